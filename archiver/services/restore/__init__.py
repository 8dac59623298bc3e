"""Restoring an archived patient onto the TPS, or into a folder, without ever damaging what is there.

The order of the steps is the promise (docs/restore.md):

1. the destination folder must not exist (nothing is ever overwritten or merged), nor, on the TPS,
   the same ``Patient_<P>`` in another group (Pinnacle's patient ids are unique in the tree);
2. the archive is fetched from a target holding a copy (verified copies first, then by target
   ``priority``); its SHA-256 and size must equal the record *and* the ``.sha256`` sidecar, else the
   next target is tried — the download is itself a fixity check, recorded as one;
3. every member is validated against the manifest before anything is written to the TPS: regular
   files and folders only, no absolute path, no ``..``, no link, nothing outside the patient's
   folder but the leading ``Institution`` and ``PDAS-MANIFEST.json``, sizes and digests as listed;
4. the members pass tarfile's ``data`` filter (what ``extractall(filter="data")`` applies) and are
   written through the TPS source (which refuses links on every path component) into a fresh
   staging folder ``.pdas-work/restore-<record id>/`` under the destination root;
5. the staged files are hashed again and must equal the manifest;
6. restored to another folder than it was archived from, the ``Patient`` file's ``PatientPath`` is
   pointed at the new one (the only change ever made to a restored file);
7. one rename puts the patient in place; its PatientLite goes into the ``Institution`` file (if
   that fails the rename is undone); the patient is read into its TpsPatient row, marked as an
   unchanged restore so curation shows it green and the archiver leaves it alone.

Any failure before the patient is in place removes the staging folder: the TPS holds the whole
patient or nothing of it. The staging folder of a restore that moved the patient stays until its record
says done; a restore of the archive to the same place that finds it (a redelivered task, or a rerun
once the dead one is finished or stale) lists and marks the patient and ends done (docs/restore.md).
"""
from archiver.services.restore.candidates import (
    Candidate, CandidateList, choose_candidate, ensure_indexed, find_candidates,
)
from archiver.services.restore.errors import ArchiveIntegrityError, RestoreError, RestoreRefused
from archiver.services.restore.runner import create_restore, execute_restore, run_restore

__all__ = ["ArchiveIntegrityError", "Candidate", "CandidateList", "RestoreError", "RestoreRefused",
           "choose_candidate", "create_restore", "ensure_indexed", "execute_restore", "find_candidates",
           "run_restore"]

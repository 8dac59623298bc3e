"""Searching an encrypted target for archives the index does not know.

An encrypted target's object names carry only the archive's SHA-256 (docs/archive-format.md), so the
search cannot filter by name as on a plain target: each unknown archive's manifest (a few kB) is
decrypted with the target's identity and matched on what it says. Only manifests are decrypted, never
an archive, and at most as many as the search's budget allows (``TARGET_MANIFESTS_LIMIT``). A target
without an identity, a budget spent before the end, or a manifest that cannot be read is said in one
line naming the target: never taken for "no archive there".
"""
from __future__ import annotations

from typing import Iterator

from archiver.services.archive_index import SidecarError, TargetArchive, read_encrypted_archive
from connectors.errors import SecretError
from connectors.storage import StorageError
from connectors.storage.base import StorageBackend
from connectors.storage.encrypted import IdentityMissing, encrypted_archives
from inventory.models import Archive
from sites.models import Institution, StorageTarget


class EncryptedScan:
    """The archives of one encrypted target that the index lacks, read one manifest at a time.

    Iterating yields each archive read (its institution not yet checked: the caller decides whether
    another institution's archive is skipped or refused). ``problems`` says afterwards what could not be
    searched; ``read`` counts the manifests decrypted, against the caller's budget."""

    def __init__(self, institution: Institution, target: StorageTarget, backend: StorageBackend, *, limit: int,
                 digest: str = ""):
        from sites.connections import target_identities

        self.target, self.backend, self.limit = target, backend, limit
        self.read, self.failed = 0, 0
        self.problems: list[str] = []
        held = [n for n in encrypted_archives(backend) if not digest or n.sha256 == digest]
        known = set(Archive.objects.filter(institution=institution, checksum__in=[n.sha256 for n in held])
                    .values_list("checksum", flat=True))
        self.unknown = [n for n in held if n.sha256 not in known]  # the index search already shows the rest
        self.identities: list = []
        if not self.unknown:
            return
        try:
            self.identities = target_identities(target)
        except SecretError as exc:
            from archiver.services.transfer import no_identity_reason

            reason = no_identity_reason(target) if isinstance(exc, IdentityMissing) else str(exc)
            self.problems.append(f"{target.name}: {reason}: its {len(self.unknown)} archive(s) not in the index "
                                 "cannot be searched")

    def __iter__(self) -> Iterator[TargetArchive]:
        if not self.identities:
            return
        first_error = ""
        for position, names in enumerate(self.unknown):
            if self.read >= self.limit:
                self.problems.append(f"{self.target.name}: {len(self.unknown) - position} encrypted archive(s) not "
                                     "searched (the search reads a limited number of manifests; run rebuild_index "
                                     "to index them all)")
                break
            self.read += 1
            try:
                found = read_encrypted_archive(self.backend, self.target, names, self.identities)
            except (SidecarError, StorageError) as exc:
                self.failed += 1
                first_error = first_error or str(exc)
                continue
            yield found
        if self.failed:
            self.problems.append(f"{self.target.name}: {self.failed} encrypted manifest(s) could not be read "
                                 f"(first: {first_error})")

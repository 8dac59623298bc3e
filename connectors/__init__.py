"""Protocol libraries: how PDAS talks to the systems around it. Plain Python: no models, no settings.

- ``connectors.tps``: the planning system's patient tree (``file://``, ``ssh://``);
- ``connectors.storage``: storage targets (``file://``, ``ftp://``, ``ftps://``, ``sftp://``, ``smb://``, ``s3://``),
  and the age objects of encrypted targets (``connectors.storage.encrypted``);
- ``connectors.rv``: record-and-verify sources (``csv:``, ``dicom-dir:``, ``mosaiq+<db-url>``);
- ``connectors.ssh``: the SSH connection the TPS and SFTP code share (pinned host keys).

Every failure is a ``connectors.errors.ConnectorError`` (each family has its subclass) that says
whether a retry can help; secrets are looked up in one place (``connectors.secrets``); each family
parses a URL once, through its scheme registry (``SCHEMES`` in the family's ``__init__``).

Adding a protocol:
1. one module in the family's package implementing its small interface (``TpsSource``,
   ``StorageBackend`` or ``RvSource``), raising the family's error with ``retryable`` set;
2. one entry in the family's scheme registry (the opener and ``load_site_config`` both ask it);
3. a row in docs/configuration.md (URL form, keys, secrets) and docs/ports.md;
4. a test against a real server started by the test harness (tests/servers/), passing the
   family's shared contract tests.
"""

"""A DICOM-RT rendition of one Pinnacle patient folder (docs/rendition.md).

``convert_patient`` turns an extracted ``Patient_<n>`` folder into CT images, an RT Structure Set per
plan and an RT Dose per trial (RT Plan on request), with pymedphys's Pinnacle export doing the RT
objects; ``validate_rendition`` runs dciodvfy on every object and checks the references between
them; ``anonymise_rendition`` de-identifies a rendition for research or teaching (PS3.15 Annex E
basic profile, retaining modified dates and patient characteristics).

Modules: ``convert`` (with ``ct`` and ``repair``), ``validate`` (with ``references``), ``anonymise``
(with ``annex_e``), ``results``. A plain library: it imports no Django app and writes nothing but into the folders it is given.
"""

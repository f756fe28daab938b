"""The small SDK a train uses inside its container.

Read the job, find the local DICOM files, suppress small counts, write declared outputs.
Only the standard library is imported, so trainkit runs in a minimal Debian image.

Examples
--------
>>> import trainkit
>>> current = trainkit.job()  # doctest: +SKIP
>>> files = list(trainkit.iter_dicom_files(current.data_dir))  # doctest: +SKIP
>>> current.out.write_json("cohort.json", {"files": trainkit.suppress_small_count(len(files))})  # doctest: +SKIP
"""

from ._dicom import iter_dicom_files as iter_dicom_files
from ._disclosure import suppress_small_count as suppress_small_count
from ._disclosure import suppress_small_counts as suppress_small_counts
from ._errors import TrainkitError as TrainkitError
from ._job import Job as Job
from ._job import Round as Round
from ._job import job as job
from ._outputs import OutputWriter as OutputWriter

__all__ = [
    "Job",
    "OutputWriter",
    "Round",
    "TrainkitError",
    "iter_dicom_files",
    "job",
    "suppress_small_count",
    "suppress_small_counts",
]

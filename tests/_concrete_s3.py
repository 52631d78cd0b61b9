"""concrete-python's S3 store handler and container (boto 2) against a moto server, in a subprocess.

boto 2 installs a six meta-path importer that makes every later import in the process warn
(ImportWarning), so concrete-python's S3 side runs in a subprocess.  ``concrete_python_s3("store", ...)``
stores every Communication file of FOLDER; ``"read"`` writes each Communication of the bucket to
FOLDER/ID.comm (checking ``len`` and ``in`` on the way).
"""

from __future__ import annotations

import subprocess
import sys

__all__ = ["concrete_python_s3"]

_BOTO_SCRIPT = r"""
import os, sys, time
from urllib.parse import urlsplit
import boto, boto.exception, boto.s3.connection
from concrete.util import read_communication_from_file, write_communication_to_buffer
from concrete.util.access import S3BackedStoreHandler
from concrete.util.comm_container import S3BackedCommunicationContainer


def retry(fn, *args):
    # moto reads a SigV2 "AWS key:signature" header as SigV4 when the base64 signature holds
    # exactly four '/', and answers 500; a second later the Date, and so the signature, differ.
    for attempt in range(5):
        try:
            return fn(*args)
        except boto.exception.BotoServerError as exc:
            if exc.status != 500 or attempt == 4:
                raise
            time.sleep(1.1)


mode, endpoint, bucket_name, prefix_len, folder = sys.argv[1:]
prefix_len = int(prefix_len)
url = urlsplit(endpoint)
conn = boto.connect_s3(host=url.hostname, port=url.port, is_secure=False,
                       calling_format=boto.s3.connection.OrdinaryCallingFormat())
bucket = retry(conn.get_bucket, bucket_name)
if mode == "store":
    handler = S3BackedStoreHandler(bucket, prefix_len)
    for name in sorted(os.listdir(folder)):
        retry(handler.store, read_communication_from_file(os.path.join(folder, name)))
else:
    container = S3BackedCommunicationContainer(bucket, prefix_len)
    ids = retry(list, container)
    assert retry(len, container) == len(ids)
    for comm_id in ids:
        assert retry(container.__contains__, comm_id)
        with open(os.path.join(folder, comm_id + ".comm"), "wb") as f:
            f.write(write_communication_to_buffer(retry(container.__getitem__, comm_id)))
conn.close()
"""


def concrete_python_s3(mode: str, endpoint: str, bucket: str, prefix_len: int, folder: str) -> None:
    subprocess.run([sys.executable, "-c", _BOTO_SCRIPT, mode, endpoint, bucket, str(prefix_len), folder],
                   check=True, stdin=subprocess.DEVNULL, timeout=120)

"""aioaccess: concrete-python's ``concrete.util.access`` on one asyncio event loop.

Port code by changing the import and adding ``await``::

    from aioaccess import CommunicationContainerFetchHandler, FetchCommunicationServiceWrapper
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from ._extras import lazy_attributes
from .exceptions import (
    AioaccessError,
    BackendUnavailable,
    CorruptCommunication,
    FrameTooLarge,
    InvalidCommId,
    InvalidCommunication,
    ProtocolError,
)
from .schema import *  # noqa: F403 - the Concrete types, by name
from .schema import __all__ as _schema_all

#: Where each public name lives; imported on first use (PEP 562), so ``import aioaccess`` loads no backend client.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("CommunicationContainer", "DirectoryBackedCommunicationContainer",
                     "FetchBackedCommunicationContainer", "MappingContainer", "MemoryBackedCommunicationContainer",
                     "RedisHashBackedCommunicationContainer", "S3BackedCommunicationContainer",
                     "ZipFileBackedCommunicationContainer", "prefix_s3_key", "unprefix_s3_key"), ".backends"),
    **dict.fromkeys(("ConnectionPool", "FetchCommunicationClient", "FetchCommunicationClientWrapper",
                     "HTTPFetchCommunicationClientWrapper", "HTTPStoreCommunicationClientWrapper",
                     "StoreCommunicationClient", "StoreCommunicationClientWrapper"), ".client"),
    **dict.fromkeys(("add_references_to_communication", "read_communication_from_buffer",
                     "write_communication_to_buffer"), ".codec"),
    **dict.fromkeys(("CommunicationReader", "CommunicationWriter", "CommunicationWriterTar", "CommunicationWriterTGZ",
                     "CommunicationWriterZip", "read_communication_from_file", "write_communication_to_file"),
                    ".file_io"),
    **dict.fromkeys(("CommunicationContainerFetchHandler", "DirectoryBackedStoreHandler",
                     "RedisHashBackedStoreHandler", "RelayFetchHandler", "S3BackedStoreHandler"), ".handlers"),
    **dict.fromkeys(("Server", "ServerConfig"), ".server"),
    **dict.fromkeys(("FetchCommunicationServiceWrapper", "StoreCommunicationServiceWrapper"), ".server.wrappers"),
}


__getattr__ = lazy_attributes(globals(), _LAZY)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


if TYPE_CHECKING:
    from .backends import (
        CommunicationContainer,
        DirectoryBackedCommunicationContainer,
        FetchBackedCommunicationContainer,
        MappingContainer,
        MemoryBackedCommunicationContainer,
        RedisHashBackedCommunicationContainer,
        S3BackedCommunicationContainer,
        ZipFileBackedCommunicationContainer,
        prefix_s3_key,
        unprefix_s3_key,
    )
    from .client import (
        ConnectionPool,
        FetchCommunicationClient,
        FetchCommunicationClientWrapper,
        HTTPFetchCommunicationClientWrapper,
        HTTPStoreCommunicationClientWrapper,
        StoreCommunicationClient,
        StoreCommunicationClientWrapper,
    )
    from .codec import add_references_to_communication, read_communication_from_buffer, write_communication_to_buffer
    from .file_io import (
        CommunicationReader,
        CommunicationWriter,
        CommunicationWriterTar,
        CommunicationWriterTGZ,
        CommunicationWriterZip,
        read_communication_from_file,
        write_communication_to_file,
    )
    from .handlers import (
        CommunicationContainerFetchHandler,
        DirectoryBackedStoreHandler,
        RedisHashBackedStoreHandler,
        RelayFetchHandler,
        S3BackedStoreHandler,
    )
    from .server import Server, ServerConfig
    from .server.wrappers import FetchCommunicationServiceWrapper, StoreCommunicationServiceWrapper

__all__ = [
    "AioaccessError",
    "BackendUnavailable",
    "CommunicationContainer",
    "CommunicationContainerFetchHandler",
    "CommunicationReader",
    "CommunicationWriter",
    "CommunicationWriterTGZ",
    "CommunicationWriterTar",
    "CommunicationWriterZip",
    "ConnectionPool",
    "CorruptCommunication",
    "DirectoryBackedCommunicationContainer",
    "DirectoryBackedStoreHandler",
    "FetchBackedCommunicationContainer",
    "FetchCommunicationClient",
    "FetchCommunicationClientWrapper",
    "FetchCommunicationServiceWrapper",
    "FrameTooLarge",
    "HTTPFetchCommunicationClientWrapper",
    "HTTPStoreCommunicationClientWrapper",
    "InvalidCommId",
    "InvalidCommunication",
    "MappingContainer",
    "MemoryBackedCommunicationContainer",
    "ProtocolError",
    "RedisHashBackedCommunicationContainer",
    "RedisHashBackedStoreHandler",
    "RelayFetchHandler",
    "S3BackedCommunicationContainer",
    "S3BackedStoreHandler",
    "Server",
    "ServerConfig",
    "StoreCommunicationClient",
    "StoreCommunicationClientWrapper",
    "StoreCommunicationServiceWrapper",
    "ZipFileBackedCommunicationContainer",
    "__version__",
    "add_references_to_communication",
    "prefix_s3_key",
    "read_communication_from_buffer",
    "read_communication_from_file",
    "unprefix_s3_key",
    "write_communication_to_buffer",
    "write_communication_to_file",
    *_schema_all,
]

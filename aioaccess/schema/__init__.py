"""The Concrete schema as thriftpy2 modules.

Each ``<name>.thrift`` file next to this module mirrors the concrete-python module
``concrete.<name>`` (same structs, field ids, types, requiredness, defaults and services).
The files are loaded once, under the module names ``aioaccess_<name>_thrift``; a file that
is reached both directly and through ``include`` yields a single module, so every type is a
single class object (``access.FetchResult`` holds ``communication.Communication`` itself).

The thriftpy2 modules are available as attributes (``schema.communication``,
``schema.access``, ...) and every type is re-exported by name (``schema.Communication``).
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable

#: The schema files (without ``.thrift``), dependencies first; each is also a module attribute.
MODULE_NAMES: tuple[str, ...] = (
    "uuid",
    "spans",
    "email",
    "twitter",
    "nitf",
    "audio",
    "metadata",
    "language",
    "property",
    "linking",
    "structure",
    "entities",
    "situations",
    "clustering",
    "communication",
    "services",
    "access",
)

__all__ = [
    "SCHEMA_DIR",
    "MODULE_NAMES",
    "modules",
    *MODULE_NAMES,
    # uuid
    "UUID",
    # spans
    "TextSpan",
    "AudioSpan",
    # email
    "EmailAddress",
    "EmailCommunicationInfo",
    # twitter
    "TwitterUser",
    "TwitterLatLong",
    "BoundingBox",
    "PlaceAttributes",
    "UserMention",
    "URL",
    "HashTag",
    "TwitterEntities",
    "TwitterPlace",
    "TwitterCoordinates",
    "TweetInfo",
    # nitf
    "NITFInfo",
    # audio
    "Sound",
    # metadata
    "TheoryDependencies",
    "Digest",
    "AnnotationMetadata",
    "CommunicationMetadata",
    # language
    "LanguageIdentification",
    # property
    "Property",
    # linking
    "LinkTarget",
    "Link",
    "Linking",
    # structure
    "TokenizationKind",
    "Constituent",
    "Parse",
    "ConstituentRef",
    "Dependency",
    "DependencyParseStructure",
    "DependencyParse",
    "Token",
    "TokenRefSequence",
    "TaggedToken",
    "TokenTagging",
    "LatticePath",
    "Arc",
    "TokenLattice",
    "TokenList",
    "SpanLink",
    "Tokenization",
    "Sentence",
    "Section",
    # entities
    "Entity",
    "EntitySet",
    "EntityMention",
    "EntityMentionSet",
    # situations
    "Argument",
    "Justification",
    "TimeML",
    "Situation",
    "SituationSet",
    "MentionArgument",
    "SituationMention",
    "SituationMentionSet",
    # clustering
    "ClusterMember",
    "Cluster",
    "Clustering",
    # communication
    "CommunicationTagging",
    "Communication",
    "CommunicationSet",
    # services
    "AnnotationTaskType",
    "AnnotationUnitType",
    "ServicesException",
    "NotImplementedException",
    "AsyncContactInfo",
    "AnnotationUnitIdentifier",
    "ServiceInfo",
    "Service",
    # access
    "FetchResult",
    "FetchRequest",
    "FetchCommunicationService",
    "StoreCommunicationService",
]

#: Directory holding the ``.thrift`` files.
SCHEMA_DIR: str = os.path.dirname(os.path.abspath(__file__))


# thriftpy2 names an included file's module after the includer's name prefix ("aioaccess_"
# + file name + "_thrift") and caches parsed modules by that name, so loading every file
# under the same prefix makes direct loads and includes share one module object.
_PREFIX = "aioaccess_"


def _loader() -> Callable[[str], types.ModuleType]:
    """``thriftpy2.load`` with one PLY parser for every file (thriftpy2 builds its LALR tables again for each
    file it parses, ~90% of loading the schema). Files are loaded dependencies first, so an ``include``
    always finds its module already parsed and never builds a parser of its own."""
    from ply import lex, yacc
    from thriftpy2.parser import lexer as thrift_lexer
    from thriftpy2.parser import parser as thrift_parser

    if not hasattr(thrift_parser, "_parse_data"):  # a thriftpy2 whose parse() leaves forward references to load()
        import thriftpy2

        return lambda name: thriftpy2.load(os.path.join(SCHEMA_DIR, f"{name}.thrift"),
                                           module_name=f"{_PREFIX}{name}_thrift", include_dirs=[SCHEMA_DIR])

    tokens = lex.lex(module=thrift_lexer)
    grammar = yacc.yacc(module=thrift_parser, debug=False, write_tables=False)

    def load(name: str) -> types.ModuleType:
        module_name = f"{_PREFIX}{name}_thrift"
        module = thrift_parser.parse(os.path.join(SCHEMA_DIR, f"{name}.thrift"), module_name,
                                     include_dirs=[SCHEMA_DIR], lexer=tokens, parser=grammar)
        sys.modules[module_name] = module  # as thriftpy2.load does: picklable types
        return module

    return load


#: The loaded thriftpy2 modules, by schema file name.
_load = _loader()
modules: dict[str, types.ModuleType] = {name: _load(name) for name in MODULE_NAMES}

uuid = modules["uuid"]
spans = modules["spans"]
email = modules["email"]
twitter = modules["twitter"]
nitf = modules["nitf"]
audio = modules["audio"]
metadata = modules["metadata"]
language = modules["language"]
property = modules["property"]
linking = modules["linking"]
structure = modules["structure"]
entities = modules["entities"]
situations = modules["situations"]
clustering = modules["clustering"]
communication = modules["communication"]
services = modules["services"]
access = modules["access"]

UUID = uuid.UUID

TextSpan = spans.TextSpan
AudioSpan = spans.AudioSpan

EmailAddress = email.EmailAddress
EmailCommunicationInfo = email.EmailCommunicationInfo

TwitterUser = twitter.TwitterUser
TwitterLatLong = twitter.TwitterLatLong
BoundingBox = twitter.BoundingBox
PlaceAttributes = twitter.PlaceAttributes
UserMention = twitter.UserMention
URL = twitter.URL
HashTag = twitter.HashTag
TwitterEntities = twitter.TwitterEntities
TwitterPlace = twitter.TwitterPlace
TwitterCoordinates = twitter.TwitterCoordinates
TweetInfo = twitter.TweetInfo

NITFInfo = nitf.NITFInfo

Sound = audio.Sound

TheoryDependencies = metadata.TheoryDependencies
Digest = metadata.Digest
AnnotationMetadata = metadata.AnnotationMetadata
CommunicationMetadata = metadata.CommunicationMetadata

LanguageIdentification = language.LanguageIdentification

Property = property.Property

LinkTarget = linking.LinkTarget
Link = linking.Link
Linking = linking.Linking

TokenizationKind = structure.TokenizationKind
Constituent = structure.Constituent
Parse = structure.Parse
ConstituentRef = structure.ConstituentRef
Dependency = structure.Dependency
DependencyParseStructure = structure.DependencyParseStructure
DependencyParse = structure.DependencyParse
Token = structure.Token
TokenRefSequence = structure.TokenRefSequence
TaggedToken = structure.TaggedToken
TokenTagging = structure.TokenTagging
LatticePath = structure.LatticePath
Arc = structure.Arc
TokenLattice = structure.TokenLattice
TokenList = structure.TokenList
SpanLink = structure.SpanLink
Tokenization = structure.Tokenization
Sentence = structure.Sentence
Section = structure.Section

Entity = entities.Entity
EntitySet = entities.EntitySet
EntityMention = entities.EntityMention
EntityMentionSet = entities.EntityMentionSet

Argument = situations.Argument
Justification = situations.Justification
TimeML = situations.TimeML
Situation = situations.Situation
SituationSet = situations.SituationSet
MentionArgument = situations.MentionArgument
SituationMention = situations.SituationMention
SituationMentionSet = situations.SituationMentionSet

ClusterMember = clustering.ClusterMember
Cluster = clustering.Cluster
Clustering = clustering.Clustering

CommunicationTagging = communication.CommunicationTagging
Communication = communication.Communication
CommunicationSet = communication.CommunicationSet

AnnotationTaskType = services.AnnotationTaskType
AnnotationUnitType = services.AnnotationUnitType
ServicesException = services.ServicesException
NotImplementedException = services.NotImplementedException
AsyncContactInfo = services.AsyncContactInfo
AnnotationUnitIdentifier = services.AnnotationUnitIdentifier
ServiceInfo = services.ServiceInfo
Service = services.Service

FetchResult = access.FetchResult
FetchRequest = access.FetchRequest
FetchCommunicationService = access.FetchCommunicationService
StoreCommunicationService = access.StoreCommunicationService

/** Provenance and source metadata for communications and their annotations. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.metadata

include "uuid.thrift"
include "twitter.thrift"
include "email.thrift"
include "nitf.thrift"

/** The theories (by UUID) that an annotation was derived from. */
struct TheoryDependencies {
  1: optional list<uuid.UUID> sectionTheoryList
  2: optional list<uuid.UUID> sentenceTheoryList
  3: optional list<uuid.UUID> tokenizationTheoryList
  4: optional list<uuid.UUID> posTagTheoryList
  5: optional list<uuid.UUID> nerTagTheoryList
  6: optional list<uuid.UUID> lemmaTheoryList
  7: optional list<uuid.UUID> langIdTheoryList
  8: optional list<uuid.UUID> parseTheoryList
  9: optional list<uuid.UUID> dependencyParseTheoryList
  10: optional list<uuid.UUID> tokenAnnotationTheoryList
  11: optional list<uuid.UUID> entityMentionSetTheoryList
  12: optional list<uuid.UUID> entitySetTheoryList
  13: optional list<uuid.UUID> situationMentionSetTheoryList
  14: optional list<uuid.UUID> situationSetTheoryList
  15: optional list<uuid.UUID> communicationsList
}

/** A small, tool-defined summary value attached to annotation metadata. */
struct Digest {
  1: optional binary bytesValue
  2: optional i64 int64Value
  3: optional double doubleValue
  4: optional string stringValue
  5: optional list<i64> int64List
  6: optional list<double> doubleList
  7: optional list<string> stringList
}

/** Provenance of an annotation: the tool that produced it, when, and from what. */
struct AnnotationMetadata {
  1: required string tool
  /** Creation time, in seconds since the Unix epoch. */
  2: required i64 timestamp
  4: optional Digest digest
  5: optional TheoryDependencies dependencies
  /** Rank of this theory among its tool's alternatives (1 is best). */
  6: required i32 kBest = 1
}

/** Source-specific metadata about a communication. */
struct CommunicationMetadata {
  1: optional twitter.TweetInfo tweetInfo
  2: optional email.EmailCommunicationInfo emailInfo
  3: optional nitf.NITFInfo nitfInfo
}

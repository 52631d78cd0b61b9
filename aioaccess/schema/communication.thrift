/** The Communication: a single document or conversation and all of its annotations. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.communication

include "uuid.thrift"
include "language.thrift"
include "structure.thrift"
include "entities.thrift"
include "situations.thrift"
include "audio.thrift"
include "metadata.thrift"
include "clustering.thrift"

/** A tagging of a whole communication, e.g. with topics or genres. */
struct CommunicationTagging {
  1: required uuid.UUID uuid
  2: required metadata.AnnotationMetadata metadata
  3: required string taggingType
  4: optional list<string> tagList
  5: optional list<double> confidenceList
}

/** A single document, message or conversation, with its text, structure and annotations. */
struct Communication {
  /** A stable, human-meaningful identifier, e.g. the source document name. */
  1: required string id
  2: required uuid.UUID uuid
  /** Kind of communication, e.g. news, tweet or email. */
  3: required string type
  /** The processed text that annotations point into. */
  4: optional string text
  /** Start time in seconds since the Unix epoch. */
  5: optional i64 startTime
  /** End time in seconds since the Unix epoch. */
  6: optional i64 endTime
  7: optional list<CommunicationTagging> communicationTaggingList
  8: required metadata.AnnotationMetadata metadata
  /** Free-form string attributes. */
  9: optional map<string, string> keyValueMap
  10: optional list<language.LanguageIdentification> lidList
  11: optional list<structure.Section> sectionList
  12: optional list<entities.EntityMentionSet> entityMentionSetList
  13: optional list<entities.EntitySet> entitySetList
  14: optional list<situations.SituationMentionSet> situationMentionSetList
  15: optional list<situations.SituationSet> situationSetList
  /** The source text before any processing. */
  16: optional string originalText
  20: optional audio.Sound sound
  21: optional metadata.CommunicationMetadata communicationMetadata
}

/** A set of communications, with optional clusterings over their contents. */
struct CommunicationSet {
  1: optional list<uuid.UUID> communicationIdList
  2: optional string corpus
  3: optional list<clustering.Clustering> entityMentionClusterList
  4: optional list<clustering.Clustering> entityClusterList
  5: optional list<clustering.Clustering> situationMentionClusterList
  6: optional list<clustering.Clustering> situationClusterList
}

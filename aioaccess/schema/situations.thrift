/** Situation (event, relation, state) mentions and the situations they are grouped into. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.situations

include "property.thrift"
include "structure.thrift"
include "metadata.thrift"
include "uuid.thrift"
include "linking.thrift"

/** An argument of a situation: an entity or a situation in some role. */
struct Argument {
  1: optional string role
  2: optional uuid.UUID entityId
  3: optional uuid.UUID situationId
  4: optional list<property.Property> propertyList
}

/** Evidence for a situation, pointing to a situation mention. */
struct Justification {
  1: optional string justificationType
  2: required uuid.UUID mentionId
  3: optional list<structure.TokenRefSequence> tokenRefSeqList
}

/** TimeML attributes of an event. */
struct TimeML {
  1: optional string timeMLClass
  2: optional string timeMLTense
  3: optional string timeMLAspect
}

/** A situation: an event, relation, or state, possibly grouping several mentions. */
struct Situation {
  1: required uuid.UUID uuid
  2: required string situationType
  3: optional list<Argument> argumentList
  4: optional list<uuid.UUID> mentionIdList
  5: optional list<Justification> justificationList
  6: optional string id
  7: optional string canonicalName
  /** Finer-grained kind, e.g. an event type within situationType. */
  50: optional string situationKind
  54: optional TimeML timeML
  /** Strength of the situation, if meaningful. */
  100: optional double intensity
  101: optional string polarity
  200: optional double confidence
  300: optional list<property.Property> propertyList
}

/** A theory of the situations of a communication. */
struct SituationSet {
  1: required uuid.UUID uuid
  2: required metadata.AnnotationMetadata metadata
  3: required list<Situation> situationList
  4: optional list<linking.Linking> linkingList
}

/** An argument of a situation mention: an entity mention, a situation mention, or tokens. */
struct MentionArgument {
  1: optional string role
  2: optional uuid.UUID entityMentionId
  3: optional uuid.UUID situationMentionId
  4: optional structure.TokenRefSequence tokens
  5: optional double confidence
  6: optional list<property.Property> propertyList
}

/** A span of text that refers to a situation. */
struct SituationMention {
  1: required uuid.UUID uuid
  2: optional string text
  3: optional string situationType
  4: required list<MentionArgument> argumentList
  5: optional string id
  50: optional string situationKind
  100: optional double intensity
  101: optional string polarity
  150: optional structure.TokenRefSequence tokens
  200: optional double confidence
  300: optional list<property.Property> propertyList
}

/** A theory of the situation mentions of a communication. */
struct SituationMentionSet {
  1: required uuid.UUID uuid
  2: required metadata.AnnotationMetadata metadata
  3: required list<SituationMention> mentionList
  4: optional list<linking.Linking> linkingList
}

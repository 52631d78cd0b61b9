/** Entity mentions and the entities they are grouped into. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.entities

include "property.thrift"
include "structure.thrift"
include "metadata.thrift"
include "uuid.thrift"
include "linking.thrift"

/** An entity: a group of entity mentions that refer to the same thing. */
struct Entity {
  1: required uuid.UUID uuid
  2: required list<uuid.UUID> mentionIdList
  3: optional string type
  4: optional double confidence
  5: optional string canonicalName
  6: optional string id
  7: optional list<structure.TokenRefSequence> rawMentionList
  8: optional list<property.Property> propertyList
}

/** A theory of the entities of a communication. */
struct EntitySet {
  1: required uuid.UUID uuid
  2: required metadata.AnnotationMetadata metadata
  3: required list<Entity> entityList
  4: optional list<linking.Linking> linkingList
  /** The entity mention set the mentions were drawn from, if only one. */
  5: optional uuid.UUID mentionSetId
}

/** A span of text that refers to an entity. */
struct EntityMention {
  1: required uuid.UUID uuid
  2: required structure.TokenRefSequence tokens
  3: optional string entityType
  4: optional string phraseType
  5: optional double confidence
  6: optional string text
  7: optional list<uuid.UUID> childMentionIdList
  8: optional string id
  9: optional list<property.Property> propertyList
}

/** A theory of the entity mentions of a communication. */
struct EntityMentionSet {
  1: required uuid.UUID uuid
  2: required metadata.AnnotationMetadata metadata
  3: required list<EntityMention> mentionList
  4: optional list<linking.Linking> linkingList
}

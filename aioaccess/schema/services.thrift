/** Types and the base service shared by all Concrete services. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.services

include "uuid.thrift"

/** Kinds of annotation tasks. */
enum AnnotationTaskType {
  TRANSLATION = 1,
  NER = 2,
  TOPICID = 3,
}

/** The unit of a communication that is to be annotated. */
enum AnnotationUnitType {
  COMMUNICATION = 1,
  SENTENCE = 2,
}

/** Raised by a service when a call fails. */
exception ServicesException {
  1: required string message
  /** An optional serialized form of the underlying error. */
  2: optional binary serEx
}

/** Raised by a service when the called method is not implemented. */
exception NotImplementedException {
  1: required string message
  /** An optional serialized form of the underlying error. */
  2: optional binary serEx
}

/** Where to reach a service that answers asynchronously. */
struct AsyncContactInfo {
  1: required string host
  2: required i32 port
}

/** Identifies a unit to annotate: a communication, or one sentence of it. */
struct AnnotationUnitIdentifier {
  1: required string communicationId
  2: optional uuid.UUID sentenceId
}

/** A description of a running service. */
struct ServiceInfo {
  1: required string name
  /** Version of the service implementation. */
  2: required string version
  3: optional string description
}

/** Operations that every Concrete service provides. */
service Service {
  /** Describes this service. */
  ServiceInfo about(),

  /** Returns true if the service is up. */
  bool alive(),
}

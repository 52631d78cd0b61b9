/** Attribute-like properties attached to entities and situations. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.property

include "metadata.thrift"

/** A property value with its provenance and an optional polarity. */
struct Property {
  1: required string value
  2: required metadata.AnnotationMetadata metadata
  3: optional double polarity
}

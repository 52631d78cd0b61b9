/** Links from Concrete objects to internal or external targets, e.g. knowledge base entries. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.linking

include "uuid.thrift"
include "metadata.thrift"

/** A candidate target of a link, either a Concrete object or a database entry. */
struct LinkTarget {
  1: optional double confidence
  2: optional uuid.UUID targetId
  3: optional string dbId
  4: optional string dbName
}

/** A link from one Concrete object to a list of candidate targets. */
struct Link {
  1: required uuid.UUID sourceId
  2: required list<LinkTarget> linkTargetList
}

/** A theory of links produced by one tool. */
struct Linking {
  1: required metadata.AnnotationMetadata metadata
  2: required list<Link> linkList
}

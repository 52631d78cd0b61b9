/** Clusterings of objects (mentions, entities, situations) across communications. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.clustering

include "uuid.thrift"
include "metadata.thrift"

/** A reference to one element of a set inside a communication. */
struct ClusterMember {
  1: required uuid.UUID communicationId
  2: required uuid.UUID setId
  3: required uuid.UUID elementId
}

/** A cluster of members, with optional confidences and child clusters. */
struct Cluster {
  1: optional list<i32> clusterMemberIndexList
  2: optional list<double> confidenceList
  3: optional list<i32> childIndexList
}

/** A theory of clusters over members drawn from one or more communications. */
struct Clustering {
  1: required uuid.UUID uuid
  2: required metadata.AnnotationMetadata metadata
  3: optional list<ClusterMember> clusterMemberList
  4: optional list<Cluster> clusterList
  5: optional list<i32> rootClusterIndexList
}

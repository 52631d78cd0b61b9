/** Services that fetch communications from, and store them into, a repository. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.access

include "communication.thrift"
include "services.thrift"

/** The communications returned by a fetch. */
struct FetchResult {
  1: required list<communication.Communication> communications
}

/** A request for communications by id. */
struct FetchRequest {
  1: required list<string> communicationIds
  2: optional string auths
}

/** Reads communications from a repository. */
service FetchCommunicationService extends services.Service {
  /** Fetches the communications with the requested ids. */
  FetchResult fetch(1: FetchRequest request) throws (1: services.ServicesException ex),

  /** Returns up to count communication ids, starting at position offset. */
  list<string> getCommunicationIDs(1: i64 offset, 2: i64 count) throws (1: services.NotImplementedException ex),

  /** Returns the number of communications available. */
  i64 getCommunicationCount() throws (1: services.NotImplementedException ex),
}

/** Writes communications to a repository. */
service StoreCommunicationService extends services.Service {
  /** Stores a communication. */
  void store(1: communication.Communication communication) throws (1: services.ServicesException ex),
}

/** Universally unique identifiers used to name and cross-reference Concrete objects. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.uuid

/** A universally unique identifier, stored in its canonical string form. */
struct UUID {
  /** Canonical hex form, e.g. 01234567-89ab-cdef-0123-456789abcdef. */
  1: required string uuidString
}

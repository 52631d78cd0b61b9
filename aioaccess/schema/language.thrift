/** Language identification results. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.language

include "metadata.thrift"
include "uuid.thrift"

/** A language identification theory: a probability for each candidate language. */
struct LanguageIdentification {
  1: required uuid.UUID uuid
  2: required metadata.AnnotationMetadata metadata
  /** Maps a language code (ISO 639-3 preferred) to its probability. */
  3: required map<string, double> languageToProbabilityMap
}

/** Audio payloads attached to a communication. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.audio

/** Audio data, given inline in one or more encodings or by path. */
struct Sound {
  1: optional binary wav
  2: optional binary mp3
  3: optional binary sph
  /** Location of the audio on disk. */
  4: optional string path
}

/** Character and audio offset ranges. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.spans

/** A character offset range [start, ending) into a text. */
struct TextSpan {
  1: required i32 start
  2: required i32 ending
}

/** A sample offset range [start, ending) into an audio signal. */
struct AudioSpan {
  1: required i64 start
  2: required i64 ending
}

/**
 * Text structure: sections, sentences, tokenizations and token-level annotations such as tags and
 * parses.
 */

namespace java edu.jhu.hlt.concrete
namespace py concrete.structure

include "metadata.thrift"
include "spans.thrift"
include "uuid.thrift"
include "language.thrift"

/** How a Tokenization stores its tokens. */
enum TokenizationKind {
  TOKEN_LIST = 1,
  TOKEN_LATTICE = 2,
}

/** A node in a constituency parse tree. */
struct Constituent {
  /** Identifier of this constituent, unique within its parse. */
  1: required i32 id
  2: optional string tag
  /** Ids of the child constituents, in order. */
  3: required list<i32> childList
  /** Index into childList of the head child; -1 if unknown. */
  4: optional i32 headChildIndex = -1
  /** First token index covered (inclusive). */
  5: optional i32 start
  /** Last token index covered (exclusive). */
  6: optional i32 ending
}

/** A constituency parse of one tokenization, stored as a flat list of constituents. */
struct Parse {
  1: required uuid.UUID uuid
  2: required metadata.AnnotationMetadata metadata
  3: required list<Constituent> constituentList
}

/** A reference to one constituent of a parse. */
struct ConstituentRef {
  1: required uuid.UUID parseId
  2: required i32 constituentIndex
}

/** A labeled dependency arc between a governor token and a dependent token. */
struct Dependency {
  /** Governor token index; -1 for the root. */
  1: optional i32 gov = -1
  /** Dependent token index. */
  2: required i32 dep
  3: optional string edgeType
}

/** Structural properties that a dependency parse is known to have. */
struct DependencyParseStructure {
  1: required bool isAcyclic
  2: required bool isConnected
  3: required bool isSingleHeaded
  4: required bool isProjective
}

/** A dependency parse of one tokenization. */
struct DependencyParse {
  1: required uuid.UUID uuid
  2: required metadata.AnnotationMetadata metadata
  3: required list<Dependency> dependencyList
  4: optional DependencyParseStructure structureInformation
}

/** A single token of a tokenization. */
struct Token {
  /** Position of this token; unique within its tokenization. */
  1: required i32 tokenIndex
  2: optional string text
  /** Location in the communication's text. */
  3: optional spans.TextSpan textSpan
  /** Location in the communication's original text. */
  4: optional spans.TextSpan rawTextSpan
  5: optional spans.AudioSpan audioSpan
}

/** A sequence of tokens, referred to by index, within one tokenization. */
struct TokenRefSequence {
  1: required list<i32> tokenIndexList
  /** The head or anchor token; -1 if none. */
  2: optional i32 anchorTokenIndex = -1
  3: required uuid.UUID tokenizationId
  4: optional spans.TextSpan textSpan
  5: optional spans.TextSpan rawTextSpan
  6: optional spans.AudioSpan audioSpan
  7: optional list<Dependency> dependencies
  8: optional ConstituentRef constituent
}

/** A tag (or a list of alternative tags) assigned to one token. */
struct TaggedToken {
  1: optional i32 tokenIndex
  2: optional string tag
  3: optional double confidence
  /** Alternative tags, parallel to confidenceList. */
  4: optional list<string> tagList
  5: optional list<double> confidenceList
}

/** A tagging of the tokens of a tokenization, e.g. part-of-speech or named-entity tags. */
struct TokenTagging {
  1: required uuid.UUID uuid
  2: required metadata.AnnotationMetadata metadata
  3: required list<TaggedToken> taggedTokenList
  /** What the tags mean, e.g. POS or NER. */
  4: optional string taggingType
}

/** One path through a token lattice. */
struct LatticePath {
  1: optional double weight
  2: required list<Token> tokenList
}

/** A weighted, token-labeled arc between two states of a token lattice. */
struct Arc {
  1: optional i32 src
  2: optional i32 dst
  3: optional Token token
  4: optional double weight
}

/** A lattice that compactly encodes several alternative token sequences. */
struct TokenLattice {
  1: optional i32 startState = 0
  2: optional i32 endState = 0
  3: required list<Arc> arcList
  /** The best path, if already computed. */
  4: optional LatticePath cachedBestPath
}

/** An ordered list of tokens. */
struct TokenList {
  1: required list<Token> tokenList
}

/** A link from a token sequence to another Concrete object or an external resource. */
struct SpanLink {
  1: required TokenRefSequence tokens
  2: optional uuid.UUID concreteTarget
  3: optional string externalTarget
  4: required string linkType
}

/** One theory of the tokens that make up a sentence, with token-level annotations. */
struct Tokenization {
  1: required uuid.UUID uuid
  2: required metadata.AnnotationMetadata metadata
  /** Set when kind is TOKEN_LIST. */
  3: optional TokenList tokenList
  /** Set when kind is TOKEN_LATTICE. */
  4: optional TokenLattice lattice
  5: required TokenizationKind kind
  6: optional list<TokenTagging> tokenTaggingList
  7: optional list<Parse> parseList
  8: optional list<DependencyParse> dependencyParseList
  9: optional list<SpanLink> spanLinkList
}

/** A sentence of a section, with its tokenization. */
struct Sentence {
  1: required uuid.UUID uuid
  2: optional Tokenization tokenization
  3: optional spans.TextSpan textSpan
  4: optional spans.TextSpan rawTextSpan
  5: optional spans.AudioSpan audioSpan
}

/** A contiguous part of a communication, such as a paragraph, heading or quoted block. */
struct Section {
  1: required uuid.UUID uuid
  2: optional list<Sentence> sentenceList
  3: optional spans.TextSpan textSpan
  4: optional spans.TextSpan rawTextSpan
  /** Kind of section, e.g. passage, title or metadata. */
  5: required string kind
  6: optional string label
  /** Position of the section in a hierarchy, e.g. [2, 1] for section 2.1. */
  7: optional list<i32> numberList
  8: optional list<language.LanguageIdentification> lidList
  9: optional spans.AudioSpan audioSpan
}

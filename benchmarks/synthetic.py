"""Deterministic synthetic, annotated Communications built from aioaccess's own schema types.

``make_communication(comm_id, size=..., seed=...)`` returns a news-like Communication whose
compact encoding is roughly ``size`` bytes: text in sections and sentences, token lists,
part-of-speech / named-entity / lemma taggings, constituency and dependency parses, entity
and situation mentions grouped into entities and situations, language identification,
metadata and a key/value map.  With ``full=True`` every field of every struct reachable from
Communication is set at least once (original text and raw spans, audio spans and a Sound,
email / tweet / NITF metadata, a token lattice, links, properties, digests, ...).

``make_communication_set`` wraps Communications in a CommunicationSet with clusterings.

The same arguments always give the same Communication (also across processes); UUIDs are
random-version-4 UUIDs drawn from a generator seeded by ``seed`` and ``comm_id``.
"""

from __future__ import annotations

import random
import struct
import uuid as _uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from thriftpy2.protocol import TCompactProtocolFactory
from thriftpy2.utils import serialize

from aioaccess.schema import (
    URL,
    UUID,
    AnnotationMetadata,
    Arc,
    Argument,
    AudioSpan,
    BoundingBox,
    Cluster,
    Clustering,
    ClusterMember,
    Communication,
    CommunicationMetadata,
    CommunicationSet,
    CommunicationTagging,
    Constituent,
    ConstituentRef,
    Dependency,
    DependencyParse,
    DependencyParseStructure,
    Digest,
    EmailAddress,
    EmailCommunicationInfo,
    Entity,
    EntityMention,
    EntityMentionSet,
    EntitySet,
    HashTag,
    Justification,
    LanguageIdentification,
    LatticePath,
    Link,
    Linking,
    LinkTarget,
    MentionArgument,
    NITFInfo,
    Parse,
    PlaceAttributes,
    Property,
    Section,
    Sentence,
    Situation,
    SituationMention,
    SituationMentionSet,
    SituationSet,
    Sound,
    SpanLink,
    TaggedToken,
    TextSpan,
    TheoryDependencies,
    TimeML,
    Token,
    Tokenization,
    TokenizationKind,
    TokenLattice,
    TokenList,
    TokenRefSequence,
    TokenTagging,
    TweetInfo,
    TwitterCoordinates,
    TwitterEntities,
    TwitterLatLong,
    TwitterPlace,
    TwitterUser,
    UserMention,
)

__all__ = ["encoded_size", "make_communication", "make_communication_set", "make_corpus"]

_FACTORY = TCompactProtocolFactory()

# Samples per character of text, for synthetic audio offsets (16 kHz audio, ~15 chars/s).
_SAMPLES_PER_CHAR = 1000
_RAW_PREFIX = "<DOC>\n<TEXT>\n"
_RAW_SUFFIX = "\n</TEXT>\n</DOC>\n"

# (name tokens, NER type)
_PEOPLE = [
    (["Maria", "Gonzalez"], "PERSON"),
    (["Wei", "Zhang"], "PERSON"),
    (["Ahmed", "Khan"], "PERSON"),
    (["Olga", "Petrova"], "PERSON"),
    (["John", "Smith"], "PERSON"),
    (["Aiko", "Tanaka"], "PERSON"),
    (["José", "Müller"], "PERSON"),
    (["Chloé", "Dubois"], "PERSON"),
    (["Kwame", "Mensah"], "PERSON"),
    (["Søren", "Nielsen"], "PERSON"),
]
_ORGS = [
    (["Acme", "Corporation"], "ORGANIZATION"),
    (["United", "Nations"], "ORGANIZATION"),
    (["Northwind", "Traders"], "ORGANIZATION"),
    (["Global", "Health", "Council"], "ORGANIZATION"),
    (["Helios", "Energy"], "ORGANIZATION"),
    (["Banco", "Atlântico"], "ORGANIZATION"),
]
_PLACES = [
    (["Baltimore"], "LOCATION"),
    (["Nairobi"], "LOCATION"),
    (["São", "Paulo"], "LOCATION"),
    (["Zürich"], "LOCATION"),
    (["Kyoto"], "LOCATION"),
    (["Lagos"], "LOCATION"),
    (["Kraków"], "LOCATION"),
    (["北京"], "LOCATION"),
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# (past form, base form, situation kind)
_VERBS = [
    ("met", "meet", "Contact.Meet"),
    ("visited", "visit", "Movement.Transport"),
    ("announced", "announce", "Communication.Statement"),
    ("criticized", "criticize", "Communication.Statement"),
    ("signed", "sign", "Transaction.Agreement"),
    ("acquired", "acquire", "Transaction.TransferOwnership"),
    ("praised", "praise", "Communication.Statement"),
    ("funded", "fund", "Transaction.TransferMoney"),
]
_NOUNS = ["agreement", "report", "plan", "proposal", "deal", "study", "budget", "merger", "policy", "grant"]
_ADJS = ["new", "controversial", "annual", "preliminary", "ambitious", "revised", "regional", "bilateral"]
_ADVS = ["reportedly", "quietly", "finally", "publicly"]
_ENTITY_KINDS = {"PERSON": "PER", "ORGANIZATION": "ORG", "LOCATION": "GPE", "DATE": "TIME"}
_TOOLS = {
    "section": "aioaccess-corpus sectioner 1.0",
    "tok": "aioaccess-corpus tokenizer 1.0",
    "pos": "aioaccess-corpus tagger 1.0",
    "ner": "aioaccess-corpus ner 1.0",
    "lemma": "aioaccess-corpus lemmatizer 1.0",
    "parse": "aioaccess-corpus parser 1.0",
    "dep": "aioaccess-corpus dependency parser 1.0",
    "em": "aioaccess-corpus mention finder 1.0",
    "coref": "aioaccess-corpus coref 1.0",
    "sm": "aioaccess-corpus event finder 1.0",
    "sit": "aioaccess-corpus event coref 1.0",
    "lid": "aioaccess-corpus lid 1.0",
    "kb": "aioaccess-corpus linker 1.0",
    "comm": "aioaccess-corpus 1.0",
}


@dataclass
class _Tok:
    word: str
    pos: str
    lemma: str
    ner: str
    head: int = -1
    rel: str = "root"


@dataclass
class _Phrase:
    label: str
    start: int
    end: int
    head: int
    children: list[_Phrase] = field(default_factory=list)


@dataclass
class _Mention:
    start: int
    end: int
    head: int
    key: str
    ner: str


@dataclass
class _Sent:
    toks: list[_Tok] = field(default_factory=list)
    phrases: list[_Phrase] = field(default_factory=list)
    mentions: list[_Mention] = field(default_factory=list)
    verb: int = 0
    verb_kind: str = ""
    subj: int = 0  # index into mentions
    place: int | None = None
    date: int | None = None

    def add(self, word: str, pos: str, lemma: str | None = None, ner: str = "O") -> int:
        self.toks.append(_Tok(word, pos, lemma if lemma is not None else word.lower(), ner))
        return len(self.toks) - 1

    def name(self, words: list[str], ner: str) -> _Phrase:
        start = len(self.toks)
        for w in words:
            self.add(w, "NNP", w, ner)
        head = len(self.toks) - 1
        for i in range(start, head):
            self._attach(i, head, "compound")
        self.mentions.append(_Mention(start, head + 1, head, " ".join(words), ner))
        return _Phrase("NP", start, head + 1, head)

    def common(self, rng: random.Random) -> _Phrase:
        start = self.add("the", "DT")
        adj = self.add(rng.choice(_ADJS), "JJ") if rng.random() < 0.7 else None
        head = self.add(rng.choice(_NOUNS), "NN")
        self._attach(start, head, "det")
        if adj is not None:
            self._attach(adj, head, "amod")
        return _Phrase("NP", start, head + 1, head)

    def pp(self, prep: str, np_fn: Callable[[], _Phrase]) -> _Phrase:
        start = self.add(prep, "IN")
        np = np_fn()
        self._attach(np.head, start, "pobj")
        return _Phrase("PP", start, np.end, start, [np])

    def _attach(self, dep: int, gov: int, rel: str) -> None:
        self.toks[dep].head = gov
        self.toks[dep].rel = rel


def _new_uuid(rng: random.Random) -> UUID:
    return UUID(uuidString=str(_uuid.UUID(int=rng.getrandbits(128), version=4)))


def _sentence(rng: random.Random) -> _Sent:
    """One synthetic news sentence: subject, verb, object, optional place and date phrases."""
    s = _Sent()
    subj_words, subj_ner = rng.choice(_PEOPLE + _ORGS)
    subj = s.name(subj_words, subj_ner)
    s.subj = len(s.mentions) - 1
    adv = s.add(rng.choice(_ADVS), "RB") if rng.random() < 0.25 else None
    past, base, kind = rng.choice(_VERBS)
    verb = s.add(past, "VBD", base)
    s.verb, s.verb_kind = verb, kind
    s._attach(subj.head, verb, "nsubj")
    if adv is not None:
        s._attach(adv, verb, "advmod")
    if kind == "Movement.Transport":
        obj_words, obj_ner = rng.choice(_PLACES)
        obj = s.name(obj_words, obj_ner)
        s.place = len(s.mentions) - 1
    elif kind in ("Contact.Meet", "Transaction.TransferOwnership") and rng.random() < 0.6:
        obj_words, obj_ner = rng.choice(_PEOPLE + _ORGS)
        obj = s.name(obj_words, obj_ner)
    else:
        obj = s.common(rng)
    s._attach(obj.head, verb, "dobj")
    vp = _Phrase("VP", verb, obj.end, verb, [obj])
    if s.place is None and rng.random() < 0.8:
        place_words, place_ner = rng.choice(_PLACES)
        pp = s.pp("in", lambda: s.name(place_words, place_ner))
        s.place = len(s.mentions) - 1
        s._attach(pp.head, verb, "prep")
        vp.children.append(pp)
        vp.end = pp.end
    if rng.random() < 0.5:
        day = rng.choice(_DAYS)

        def date() -> _Phrase:
            i = s.add(day, "NNP", day, "DATE")
            s.mentions.append(_Mention(i, i + 1, i, day, "DATE"))
            return _Phrase("NP", i, i + 1, i)

        pp = s.pp("on", date)
        s.date = len(s.mentions) - 1
        s._attach(pp.head, verb, "prep")
        vp.children.append(pp)
        vp.end = pp.end
    stop = s.add(".", ".", ".")
    s._attach(stop, verb, "punct")
    s.phrases = [subj, vp]
    if adv is not None:
        s.phrases.insert(1, _Phrase("ADVP", adv, adv + 1, adv))
    return s


def _sentence_text(sent: _Sent, offset: int) -> tuple[str, list[tuple[int, int]]]:
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = offset
    for i, tok in enumerate(sent.toks):
        if i and tok.pos != ".":
            parts.append(" ")
            pos += 1
        spans.append((pos, pos + len(tok.word)))
        parts.append(tok.word)
        pos += len(tok.word)
    return "".join(parts), spans


class _Builder:
    """Builds one Communication from a fixed random stream; see make_communication."""

    def __init__(self, comm_id: str, seed: int, full: bool) -> None:
        self.comm_id = comm_id
        self.seed = seed
        self.full = full
        self.rng = random.Random(f"aioaccess-corpus:{seed}:{comm_id}")
        self.t0 = 1_400_000_000 + self.rng.randrange(300_000_000)
        self.meta: dict[str, AnnotationMetadata] = {}
        for i, (key, tool) in enumerate(_TOOLS.items()):
            self.meta[key] = AnnotationMetadata(tool=tool, timestamp=self.t0 + 60 + i, kBest=1)
        # The random streams for text and for ids are separate, so that the n-th sentence is
        # the same whatever the number of sentences.
        self.text_rng = random.Random(self.rng.getrandbits(64))
        self.id_rng = random.Random(self.rng.getrandbits(64))
        self.sentences = [_sentence(self.text_rng) for _ in range(1)]

    def uuid(self) -> UUID:
        return _new_uuid(self.id_rng)

    def sentences_upto(self, n: int) -> list[_Sent]:
        while len(self.sentences) < n:
            self.sentences.append(_sentence(self.text_rng))
        return self.sentences[:n]

    def _raw(self, a: int, b: int) -> TextSpan | None:
        return TextSpan(start=a + len(_RAW_PREFIX), ending=b + len(_RAW_PREFIX)) if self.full else None

    def _audio(self, a: int, b: int) -> AudioSpan | None:
        return AudioSpan(start=a * _SAMPLES_PER_CHAR, ending=b * _SAMPLES_PER_CHAR) if self.full else None

    def build(self, n_sentences: int) -> Communication:
        # UUIDs are drawn afresh for every build, in a fixed order.
        self.id_rng = random.Random(f"aioaccess-corpus-ids:{self.seed}:{self.comm_id}")
        sents = self.sentences_upto(max(1, n_sentences))
        full = self.full

        # Text, sections and sentences.
        text_parts: list[str] = []
        offset = 0
        sections: list[Section] = []
        # Per sentence: (Sentence, Tokenization, token spans)
        placed: list[tuple[_Sent, Sentence, Tokenization]] = []
        i = 0
        sec_no = 0
        while i < len(sents):
            take = min(len(sents) - i, 2 + (sec_no % 3))
            if sections:
                text_parts.append("\n\n")
                offset += 2
            sec_start = offset
            sec_sentences: list[Sentence] = []
            for j, sent in enumerate(sents[i : i + take]):
                if j:
                    text_parts.append(" ")
                    offset += 1
                stext, spans = _sentence_text(sent, offset)
                tokenization = self._tokenization(sent, spans)
                sentence = Sentence(
                    uuid=self.uuid(),
                    tokenization=tokenization,
                    textSpan=TextSpan(start=offset, ending=offset + len(stext)),
                    rawTextSpan=self._raw(offset, offset + len(stext)),
                    audioSpan=self._audio(offset, offset + len(stext)),
                )
                sec_sentences.append(sentence)
                placed.append((sent, sentence, tokenization))
                text_parts.append(stext)
                offset += len(stext)
            sec_no += 1
            sections.append(
                Section(
                    uuid=self.uuid(),
                    sentenceList=sec_sentences,
                    textSpan=TextSpan(start=sec_start, ending=offset),
                    rawTextSpan=self._raw(sec_start, offset),
                    kind="passage",
                    label=f"p{sec_no}" if full else None,
                    numberList=[1, sec_no] if full else None,
                    lidList=[self._lid()] if full and sec_no == 1 else None,
                    audioSpan=self._audio(sec_start, offset),
                )
            )
            i += take
        text = "".join(text_parts)
        if full:
            sections.append(self._lattice_section(len(sections) + 1))

        ems, ess, sms, sss = self._mentions_and_clusters(placed)
        comm = Communication(
            id=self.comm_id,
            uuid=self.uuid(),
            type="news",
            text=text,
            metadata=self.meta["comm"],
            keyValueMap={"source": "aioaccess-corpus", "genre": "news", "sentences": str(len(sents))},
            lidList=[self._lid()],
            sectionList=sections,
            entityMentionSetList=[ems],
            entitySetList=[ess],
            situationMentionSetList=[sms],
            situationSetList=[sss],
        )
        if full:
            self._add_full(comm)
        return comm

    def _lid(self) -> LanguageIdentification:
        return LanguageIdentification(
            uuid=self.uuid(),
            metadata=self.meta["lid"],
            languageToProbabilityMap={"eng": 0.93, "spa": 0.04, "deu": 0.02, "por": 0.01},
        )

    def _tokenization(self, sent: _Sent, spans: list[tuple[int, int]]) -> Tokenization:
        full = self.full
        tokens = [
            Token(
                tokenIndex=k,
                text=tok.word,
                textSpan=TextSpan(start=a, ending=b),
                rawTextSpan=self._raw(a, b),
                audioSpan=self._audio(a, b),
            )
            for k, (tok, (a, b)) in enumerate(zip(sent.toks, spans, strict=True))
        ]
        ner_tags = [
            TaggedToken(tokenIndex=k, tag=tok.ner, confidence=0.9 if tok.ner != "O" else 0.99)
            for k, tok in enumerate(sent.toks)
        ]
        if full:
            ner_tags[0].tagList = [sent.toks[0].ner, "O"]
            ner_tags[0].confidenceList = [0.9, 0.1]
        taggings = [
            TokenTagging(
                uuid=self.uuid(),
                metadata=self.meta["pos"],
                taggedTokenList=[TaggedToken(tokenIndex=k, tag=tok.pos) for k, tok in enumerate(sent.toks)],
                taggingType="POS",
            ),
            TokenTagging(uuid=self.uuid(), metadata=self.meta["ner"], taggedTokenList=ner_tags, taggingType="NER"),
            TokenTagging(
                uuid=self.uuid(),
                metadata=self.meta["lemma"],
                taggedTokenList=[TaggedToken(tokenIndex=k, tag=tok.lemma) for k, tok in enumerate(sent.toks)],
                taggingType="LEMMA",
            ),
        ]
        tokenization = Tokenization(
            uuid=self.uuid(),
            metadata=self.meta["tok"],
            tokenList=TokenList(tokenList=tokens),
            kind=TokenizationKind.TOKEN_LIST,
            tokenTaggingList=taggings,
            parseList=[self._parse(sent)],
            dependencyParseList=[self._dependency_parse(sent)],
        )
        return tokenization

    def _parse(self, sent: _Sent) -> Parse:
        """A constituency parse: S over the phrases, phrases over POS preterminals."""
        constituents: list[Constituent] = []

        def node(tag: str, start: int, end: int, children: list[int], head: int) -> int:
            cid = len(constituents)
            constituents.append(
                Constituent(id=cid, tag=tag, childList=children, headChildIndex=head, start=start, ending=end)
            )
            return cid

        root = node("S", 0, len(sent.toks), [], 0)

        def phrase(p: _Phrase) -> int:
            pid = node(p.label, p.start, p.end, [], 0)
            kids: list[tuple[int, int]] = []  # (first token, constituent id)
            covered: set[int] = set()
            for child in p.children:
                kids.append((child.start, phrase(child)))
                covered.update(range(child.start, child.end))
            for k in range(p.start, p.end):
                if k not in covered:
                    kids.append((k, node(sent.toks[k].pos, k, k + 1, [], -1)))
            kids.sort()
            constituents[pid].childList = [cid for _, cid in kids]
            head_pos = [
                n for n, (first, cid) in enumerate(kids) if constituents[cid].start <= p.head < constituents[cid].ending
            ]
            constituents[pid].headChildIndex = head_pos[0] if head_pos else -1
            return pid

        kids = [phrase(p) for p in sent.phrases]
        kids.append(node(".", len(sent.toks) - 1, len(sent.toks), [], -1))
        constituents[root].childList = kids
        constituents[root].headChildIndex = next(n for n, cid in enumerate(kids) if constituents[cid].tag == "VP")
        return Parse(uuid=self.uuid(), metadata=self.meta["parse"], constituentList=constituents)

    def _dependency_parse(self, sent: _Sent) -> DependencyParse:
        return DependencyParse(
            uuid=self.uuid(),
            metadata=self.meta["dep"],
            dependencyList=[Dependency(gov=tok.head, dep=k, edgeType=tok.rel) for k, tok in enumerate(sent.toks)],
            structureInformation=DependencyParseStructure(
                isAcyclic=True, isConnected=True, isSingleHeaded=True, isProjective=True
            )
            if self.full
            else None,
        )

    def _refseq(self, tokenization: Tokenization, start: int, end: int, anchor: int) -> TokenRefSequence:
        tokens = tokenization.tokenList.tokenList
        a, b = tokens[start].textSpan.start, tokens[end - 1].textSpan.ending
        seq = TokenRefSequence(
            tokenIndexList=list(range(start, end)),
            anchorTokenIndex=anchor,
            tokenizationId=tokenization.uuid,
            textSpan=TextSpan(start=a, ending=b),
        )
        if self.full:
            seq.rawTextSpan = self._raw(a, b)
            seq.audioSpan = self._audio(a, b)
        return seq

    def _mentions_and_clusters(
        self, placed: list[tuple[_Sent, Sentence, Tokenization]]
    ) -> tuple[EntityMentionSet, EntitySet, SituationMentionSet, SituationSet]:
        full = self.full
        mentions: list[EntityMention] = []
        by_key: dict[str, list[EntityMention]] = {}
        sit_mentions: list[SituationMention] = []
        by_event: dict[tuple[str, str], list[SituationMention]] = {}
        for sent, _sentence_obj, tokenization in placed:
            local: list[EntityMention] = []
            for m in sent.mentions:
                em = EntityMention(
                    uuid=self.uuid(),
                    tokens=self._refseq(tokenization, m.start, m.end, m.head),
                    entityType=_ENTITY_KINDS[m.ner],
                    phraseType="NAME",
                    confidence=0.9,
                    text=m.key,
                )
                mentions.append(em)
                local.append(em)
                by_key.setdefault(m.key, []).append(em)
            words = sent.toks
            args = [MentionArgument(role="Agent", entityMentionId=local[sent.subj].uuid, confidence=0.8)]
            if sent.place is not None:
                args.append(MentionArgument(role="Place", entityMentionId=local[sent.place].uuid, confidence=0.7))
            if sent.date is not None:
                args.append(MentionArgument(role="Time", entityMentionId=local[sent.date].uuid, confidence=0.7))
            sm = SituationMention(
                uuid=self.uuid(),
                text=words[sent.verb].word,
                situationType="EVENT",
                argumentList=args,
                situationKind=sent.verb_kind,
                tokens=self._refseq(tokenization, sent.verb, sent.verb + 1, sent.verb),
                confidence=0.75,
            )
            sit_mentions.append(sm)
            by_event.setdefault((words[sent.verb].lemma, sent.mentions[sent.subj].key), []).append(sm)

        ems = EntityMentionSet(uuid=self.uuid(), metadata=self.meta["em"], mentionList=mentions)
        entities = [
            Entity(
                uuid=self.uuid(),
                mentionIdList=[em.uuid for em in group],
                type=group[0].entityType,
                confidence=0.85,
                canonicalName=key,
            )
            for key, group in by_key.items()
        ]
        ess = EntitySet(uuid=self.uuid(), metadata=self.meta["coref"], entityList=entities)
        sms = SituationMentionSet(uuid=self.uuid(), metadata=self.meta["sm"], mentionList=sit_mentions)
        entity_of = {mid.uuidString: ent for ent in entities for mid in ent.mentionIdList}
        situations = []
        for (lemma, _subject), group in by_event.items():
            agent = entity_of.get(group[0].argumentList[0].entityMentionId.uuidString)
            situations.append(
                Situation(
                    uuid=self.uuid(),
                    situationType="EVENT",
                    argumentList=[Argument(role="Agent", entityId=agent.uuid)] if agent else None,
                    mentionIdList=[sm.uuid for sm in group],
                    situationKind=group[0].situationKind,
                    confidence=0.7,
                    canonicalName=lemma,
                )
            )
        sss = SituationSet(uuid=self.uuid(), metadata=self.meta["sit"], situationList=situations)
        if full:
            self._decorate(placed, ems, ess, sms, sss)
        return ems, ess, sms, sss

    # -- full=True extras -------------------------------------------------------------------

    def _decorate(
        self,
        placed: list[tuple[_Sent, Sentence, Tokenization]],
        ems: EntityMentionSet,
        ess: EntitySet,
        sms: SituationMentionSet,
        sss: SituationSet,
    ) -> None:
        """Set every optional field of the annotation structures at least once."""
        sent, sentence, tok = placed[0]
        parse, dparse = tok.parseList[0], tok.dependencyParseList[0]
        kb_meta = self.meta["kb"]

        def prop(value: str) -> Property:
            return Property(value=value, metadata=kb_meta, polarity=0.5)

        def linking(source: UUID, name: str) -> Linking:
            target = LinkTarget(confidence=0.6, targetId=self.uuid(), dbId=f"Q{self.id_rng.randrange(10**6)}")
            target.dbName = "wikidata"
            return Linking(metadata=kb_meta, linkList=[Link(sourceId=source, linkTargetList=[target])])

        em0 = ems.mentionList[0]
        em0.childMentionIdList = [m.uuid for m in ems.mentionList[1:2]]
        em0.id = "m0"
        em0.propertyList = [prop("salient")]
        em0.tokens.dependencies = [d for d in dparse.dependencyList if d.dep in em0.tokens.tokenIndexList]
        em0.tokens.constituent = ConstituentRef(parseId=parse.uuid, constituentIndex=1)
        ems.linkingList = [linking(em0.uuid, em0.text)]

        ent0 = ess.entityList[0]
        ent0.id = "e0"
        ent0.rawMentionList = [em0.tokens]
        ent0.propertyList = [prop("Title=minister")]
        ess.linkingList = [linking(ent0.uuid, ent0.canonicalName)]
        ess.mentionSetId = ems.uuid

        sm0 = sms.mentionList[0]
        sm0.id = "sm0"
        sm0.intensity = 0.5
        sm0.polarity = "POSITIVE"
        sm0.propertyList = [prop("Tense=past")]
        sm0.argumentList += [
            MentionArgument(role="Cause", situationMentionId=sms.mentionList[-1].uuid, confidence=0.4),
            MentionArgument(
                role="Theme",
                tokens=self._refseq(tok, 0, len(sent.toks) - 1, sent.verb),
                confidence=0.4,
                propertyList=[prop("implicit")],
            ),
        ]
        sms.linkingList = [linking(sm0.uuid, sm0.text)]

        sit0 = sss.situationList[0]
        sit0.argumentList = (sit0.argumentList or []) + [
            Argument(role="Related", situationId=sss.situationList[-1].uuid, propertyList=[prop("weak")])
        ]
        sit0.justificationList = [
            Justification(justificationType="direct", mentionId=sm0.uuid, tokenRefSeqList=[sm0.tokens])
        ]
        sit0.id = "s0"
        sit0.timeML = TimeML(timeMLClass="OCCURRENCE", timeMLTense="PAST", timeMLAspect="NONE")
        sit0.intensity = 1.0
        sit0.polarity = "POSITIVE"
        sit0.propertyList = [prop("Modality=asserted")]
        sss.linkingList = [linking(sit0.uuid, sit0.canonicalName or "")]

        tok.spanLinkList = [
            SpanLink(
                tokens=em0.tokens,
                concreteTarget=ent0.uuid,
                externalTarget=f"https://www.wikidata.org/wiki/Q{self.id_rng.randrange(10**6)}",
                linkType="entity",
            )
        ]
        self.meta["sm"].digest = Digest(
            bytesValue=bytes(range(16)),
            int64Value=-(2**40),
            doubleValue=-0.25,
            stringValue="crf",
            int64List=[0, -1, 2**62],
            doubleList=[0.0, -1.5, 3.25],
            stringList=["model=ner-en", "ü"],
        )
        self.meta["sit"].dependencies = TheoryDependencies(
            **{name: [self.uuid()] for _, name, *_ in TheoryDependencies.thrift_spec.values()}
        )

    def _lattice_section(self, number: int) -> Section:
        """A section holding one sentence tokenized as a lattice (no text spans)."""
        words = ["Officials", "confirmed", "confirm", "it", "."]

        def token(k: int) -> Token:
            return Token(tokenIndex=k, text=words[k])

        arcs = [
            Arc(src=0, dst=1, token=token(0), weight=0.0),
            Arc(src=1, dst=2, token=token(1), weight=0.2),
            Arc(src=1, dst=2, token=token(2), weight=1.6),
            Arc(src=2, dst=3, token=token(3), weight=0.0),
            Arc(src=3, dst=4, token=token(4), weight=0.0),
        ]
        lattice = TokenLattice(
            startState=0,
            endState=4,
            arcList=arcs,
            cachedBestPath=LatticePath(weight=0.2, tokenList=[token(0), token(1), token(3), token(4)]),
        )
        tokenization = Tokenization(
            uuid=self.uuid(), metadata=self.meta["tok"], lattice=lattice, kind=TokenizationKind.TOKEN_LATTICE
        )
        return Section(
            uuid=self.uuid(),
            sentenceList=[Sentence(uuid=self.uuid(), tokenization=tokenization)],
            kind="other",
            label="asr",
            numberList=[number],
        )

    def _add_full(self, comm: Communication) -> None:
        comm.originalText = _RAW_PREFIX + comm.text + _RAW_SUFFIX
        comm.startTime = self.t0
        comm.endTime = self.t0 + len(comm.text) * _SAMPLES_PER_CHAR // 16000
        comm.communicationTaggingList = [
            CommunicationTagging(
                uuid=self.uuid(),
                metadata=self.meta["comm"],
                taggingType="TOPIC",
                tagList=["politics", "business"],
                confidenceList=[0.7, 0.3],
            )
        ]
        comm.sound = _sound(self.comm_id)
        comm.communicationMetadata = CommunicationMetadata(
            tweetInfo=self._tweet(comm.text), emailInfo=_email(self.comm_id), nitfInfo=self._nitf(comm)
        )

    def _tweet(self, text: str) -> TweetInfo:
        rng = self.id_rng
        tweet_text = text[:120] + " #news @wire https://t.co/x1"
        point = TwitterLatLong(latitude=-1.2921, longitude=36.8219)
        return TweetInfo(
            id=rng.getrandbits(62),
            text=tweet_text,
            createdAt="Mon Jun 01 12:00:00 +0000 2015",
            user=TwitterUser(
                id=rng.getrandbits(40),
                name="Wire Desk",
                screenName="wire",
                lang="en",
                geoEnabled=False,
                createdAt="Tue Mar 21 20:50:14 +0000 2006",
                friendsCount=120,
                statusesCount=54_000,
                verified=True,
                listedCount=0,
                favouritesCount=3,
                followersCount=2_000_000,
                location="Nairobi",
                timeZone="Africa/Nairobi",
                description="Synthetic news wire",
                utcOffset=10_800,
                url="https://example.org/wire",
            ),
            truncated=True,
            entities=TwitterEntities(
                hashtagList=[HashTag(text="news", startOffset=121, endOffset=126)],
                urlList=[
                    URL(
                        startOffset=133,
                        endOffset=149,
                        expandedUrl="https://example.org/a/1",
                        url="https://t.co/x1",
                        displayUrl="example.org/a/1",
                    )
                ],
                userMentionList=[UserMention(startOffset=127, endOffset=132, screenName="wire", name="Wire", id=7)],
            ),
            source="web",
            coordinates=TwitterCoordinates(type="Point", coordinates=point),
            place=TwitterPlace(
                placeType="city",
                countryCode="KE",
                country="Kenya",
                fullName="Nairobi, Kenya",
                name="Nairobi",
                id="a1b2c3",
                url="https://api.example.org/places/a1b2c3.json",
                boundingBox=BoundingBox(type="Polygon", coordinateList=[point, TwitterLatLong(latitude=0.0)]),
                attributes=PlaceAttributes(streetAddress="1 Harambee Ave", region="Nairobi", locality="CBD"),
            ),
            favorited=False,
            retweeted=False,
            retweetCount=0,
            inReplyToScreenName="desk",
            inReplyToStatusId=-1,
            inReplyToUserId=2**63 - 1,
            retweetedScreenName="",
            retweetedStatusId=0,
            retweetedUserId=-(2**63),
        )

    def _nitf(self, comm: Communication) -> NITFInfo:
        """NITF metadata with every field set (lists hold one or two short strings)."""
        values: dict[str, object] = {}
        for ttype, name, *_ in NITFInfo.thrift_spec.values():
            if ttype == 15:  # list<string>
                values[name] = [f"{name} A", f"{name} B"]
            elif ttype == 8:  # i32
                values[name] = 1 + len(name)
            elif ttype == 10:  # i64
                values[name] = (self.t0 + len(name)) * 1000
            else:
                values[name] = f"{name} of {comm.id}"
        values["url"] = f"https://example.org/news/{comm.id}"
        values["wordCount"] = len(comm.text.split())
        return NITFInfo(**values)


def _email(comm_id: str) -> EmailCommunicationInfo:
    def addr(local: str, name: str | None = None) -> EmailAddress:
        return EmailAddress(address=f"{local}@example.org", displayName=name)

    return EmailCommunicationInfo(
        messageId=f"<{comm_id}@example.org>",
        contentType="text/plain; charset=utf-8",
        userAgent="aioaccess-corpus",
        inReplyToList=["<earlier@example.org>"],
        referenceList=["<root@example.org>", "<earlier@example.org>"],
        senderAddress=addr("desk", "News Desk"),
        returnPathAddress=addr("bounce"),
        toAddressList=[addr("editor", "Éditeur")],
        ccAddressList=[addr("archive")],
        bccAddressList=[],
        emailFolder="INBOX",
        subject=f"Story {comm_id}",
        quotedAddresses=["editor@example.org"],
        attachmentPaths=["notes.txt"],
        salutation="Hi all,",
        signature="-- desk",
    )


def _sound(comm_id: str) -> Sound:
    samples = bytes(64)
    wav = (
        b"RIFF"
        + struct.pack("<I", 36 + len(samples))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
        + b"data"
        + struct.pack("<I", len(samples))
        + samples
    )
    return Sound(
        wav=wav,
        mp3=b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes([0xFF, 0xFB, 0x90, 0x00]),
        sph=b"NIST_1A\n   1024\nsample_rate -i 16000\nend_head\n",
        path=f"/data/audio/{comm_id}.wav",
    )


def encoded_size(obj: object) -> int:
    """Length of obj's compact-protocol encoding."""
    return len(serialize(obj, _FACTORY))


# Per `full`: (encoded size of a one-sentence communication, bytes per extra token).
_CALIBRATION: dict[bool, tuple[float, float]] = {}


def _calibration(full: bool) -> tuple[float, float]:
    if full not in _CALIBRATION:
        builder = _Builder("calibration", 0, full)
        one = encoded_size(builder.build(1))
        many = encoded_size(builder.build(40))
        tokens = [len(s.toks) for s in builder.sentences_upto(40)]
        _CALIBRATION[full] = (one, (many - one) / (sum(tokens) - tokens[0]))
    return _CALIBRATION[full]


def make_communication(comm_id: str, *, size: int = 6000, seed: int = 0, full: bool = False) -> Communication:
    """A deterministic annotated Communication whose compact encoding is about `size` bytes.

    The number of sentences is estimated from a per-token byte cost and checked with one
    encoding. A sentence with its annotations costs about 2.5 KB, which bounds the precision;
    at least one sentence is always present (about 3 KB, or 8 KB with ``full=True``).
    """
    builder = _Builder(comm_id, seed, full)
    base, per_token = _calibration(full)
    n, estimate = _sentences_for(builder, base, per_token, size)
    comm = builder.build(n)
    actual = encoded_size(comm)
    if n > 1 and abs(actual - size) > 0.1 * size:
        # Rescale the variable part by what the encoding showed, once.
        scale = (actual - base) / max(estimate - base, 1.0)
        m, _ = _sentences_for(builder, base, per_token, base + (size - base) / scale)
        if m != n:
            comm = builder.build(m)
    return comm


def _sentences_for(builder: _Builder, base: float, per_token: float, size: float) -> tuple[int, float]:
    """How many sentences make about ``size`` bytes, and the estimated size of that many."""
    n, estimate = 1, base
    while True:
        nxt = builder.sentences_upto(n + 1)[n]
        step = per_token * len(nxt.toks)
        if estimate + step / 2 > size:
            return n, estimate
        n, estimate = n + 1, estimate + step


def make_corpus(n: int, *, size: int = 6000, seed: int = 0, full: bool = False) -> Iterator[Communication]:
    """Yield n Communications with ids ``comm-000000``, ``comm-000001``, ..."""
    for i in range(n):
        yield make_communication(f"comm-{i:06d}", size=size, seed=seed, full=full)


def make_communication_set(comms: list[Communication], *, corpus: str = "aioaccess-corpus") -> CommunicationSet:
    """A CommunicationSet over comms, with clusterings of their entity and situation (mentions)."""
    rng = random.Random(f"aioaccess-corpus-set:{corpus}:{len(comms)}")
    meta = AnnotationMetadata(
        tool="aioaccess-corpus clusterer 1.0",
        timestamp=1_500_000_000,
        digest=Digest(bytesValue=b"\x00\xff", int64Value=len(comms), doubleValue=0.5, stringValue="greedy"),
        dependencies=_theories(comms),
        kBest=1,
    )
    meta.digest.int64List, meta.digest.doubleList, meta.digest.stringList = [1], [0.9], ["name-match"]

    def clustering(pick: Callable[[Communication], list[tuple[Any, Any]]]) -> Clustering:
        members = [
            ClusterMember(communicationId=c.uuid, setId=s.uuid, elementId=e.uuid) for c in comms for s, e in pick(c)
        ]
        clusters: list[Cluster] = []
        by_name: dict[str, list[int]] = {}
        names = [name for c in comms for name in _names(pick(c))]
        for idx, name in enumerate(names):
            by_name.setdefault(name, []).append(idx)
        for idxs in by_name.values():
            clusters.append(Cluster(clusterMemberIndexList=idxs, confidenceList=[0.9] * len(idxs), childIndexList=[]))
        return Clustering(
            uuid=_new_uuid(rng),
            metadata=meta,
            clusterMemberList=members,
            clusterList=clusters,
            rootClusterIndexList=list(range(len(clusters))),
        )

    return CommunicationSet(
        communicationIdList=[c.uuid for c in comms],
        corpus=corpus,
        entityMentionClusterList=[
            clustering(lambda c: [(s, m) for s in c.entityMentionSetList or [] for m in s.mentionList])
        ],
        entityClusterList=[clustering(lambda c: [(s, e) for s in c.entitySetList or [] for e in s.entityList])],
        situationMentionClusterList=[
            clustering(lambda c: [(s, m) for s in c.situationMentionSetList or [] for m in s.mentionList])
        ],
        situationClusterList=[
            clustering(lambda c: [(s, e) for s in c.situationSetList or [] for e in s.situationList])
        ],
    )


def _theories(comms: list[Communication]) -> TheoryDependencies:
    """The annotation theories (by UUID) found in comms, by kind."""
    deps = TheoryDependencies(
        **{name: [] for _, name, *_ in TheoryDependencies.thrift_spec.values()},
    )
    taggings = {"POS": deps.posTagTheoryList, "NER": deps.nerTagTheoryList, "LEMMA": deps.lemmaTheoryList}
    for c in comms:
        deps.communicationsList.append(c.uuid)
        deps.langIdTheoryList += [lid.uuid for lid in c.lidList or []]
        deps.entityMentionSetTheoryList += [s.uuid for s in c.entityMentionSetList or []]
        deps.entitySetTheoryList += [s.uuid for s in c.entitySetList or []]
        deps.situationMentionSetTheoryList += [s.uuid for s in c.situationMentionSetList or []]
        deps.situationSetTheoryList += [s.uuid for s in c.situationSetList or []]
        for section in c.sectionList or []:
            deps.sectionTheoryList.append(section.uuid)
            for sentence in section.sentenceList or []:
                deps.sentenceTheoryList.append(sentence.uuid)
                tok = sentence.tokenization
                if tok is None:
                    continue
                deps.tokenizationTheoryList.append(tok.uuid)
                deps.parseTheoryList += [p.uuid for p in tok.parseList or []]
                deps.dependencyParseTheoryList += [p.uuid for p in tok.dependencyParseList or []]
                for tagging in tok.tokenTaggingList or []:
                    taggings.get(tagging.taggingType, []).append(tagging.uuid)
                deps.tokenAnnotationTheoryList += [t.uuid for t in tok.tokenTaggingList or []]
    return deps


def _names(pairs: list[tuple[Any, Any]]) -> list[str]:
    out = []
    for _set, element in pairs:
        out.append(getattr(element, "canonicalName", None) or getattr(element, "text", None) or element.uuid.uuidString)
    return out

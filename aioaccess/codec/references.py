"""concrete-python's ``add_references_to_communication``, for aioaccess's objects.

The same references, set in the same order, with the same results on odd
input (a dangling UUID raises the KeyError concrete-python raises, or gives
the None it gives).  The references link decoded objects into cycles
(``tokenization.sentence`` and ``sentence.tokenization``, a mention set and its
mentions, ...).  The compiled codec leaves decoded objects out of the cyclic
garbage collector; the objects these cycles run through (and the new dicts and
lists) are handed to ``gc_hold``, which keeps them alive and untracked while
the Communication lives and tracks them again when it dies, so the collector
then reclaims the cycles (and never traverses them before).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["add_references_to_communication"]


def _no_hold(comm: Any, objects: list[Any]) -> None:
    """Objects built by the pure-Python codec are tracked already."""


def _holder() -> Callable[[Any, list[Any]], None]:
    from . import _impl

    return getattr(_impl, "gc_hold", _no_hold)


def _lun(lst: list[Any] | None) -> list[Any]:
    return [] if lst is None else lst


def _link(obj: Any, id_name: str, ref_name: str, table: dict[str, Any]) -> None:
    """``obj.<ref_name>``: the object the UUID ``obj.<id_name>`` names (KeyError if none), or None."""
    uuid = getattr(obj, id_name)
    setattr(obj, ref_name, table[uuid.uuidString] if uuid else None)


def add_references_to_communication(comm: Any) -> None:
    """Add concrete-python's reference attributes for the UUID "pointers" of ``comm``.

    ``comm.sectionForUUID``, ``sentenceForUUID``, ``tokenizationForUUID``,
    ``entityForUUID``, ``entityMentionForUUID``, ``situationForUUID`` and
    ``situationMentionForUUID``; ``tokenization`` on each TokenRefSequence,
    ``sentence`` on each Tokenization, ``entityMention``/``situationMention`` on
    each MentionArgument, ``entity``/``situation`` on each Argument,
    ``mentionList`` on each Entity and Situation, ``childMentionList`` and
    ``parentMention`` and ``entityMentionSet`` on each EntityMention,
    ``entitySet``, ``situationMentionSet`` and ``situationSet`` back-pointers.
    """
    cyclic: list[Any] = []  # objects the new references may link into a cycle, and the new dicts and lists
    try:
        comm.entityForUUID = entity_for = {}
        comm.entityMentionForUUID = mention_for = {}
        comm.sectionForUUID = section_for = {}
        comm.sentenceForUUID = sentence_for = {}
        comm.situationForUUID = situation_for = {}
        comm.situationMentionForUUID = sit_mention_for = {}
        comm.tokenizationForUUID = tokenization_for = {}
        cyclic += (entity_for, mention_for, section_for, sentence_for, situation_for, sit_mention_for,
                   tokenization_for)

        if comm.sectionList:
            for section in comm.sectionList:
                section_for[section.uuid.uuidString] = section
                if section.sentenceList:
                    for sentence in section.sentenceList:
                        sentence_for[sentence.uuid.uuidString] = sentence
                        tokenization = sentence.tokenization
                        if tokenization:
                            tokenization_for[tokenization.uuid.uuidString] = tokenization
                            tokenization.sentence = sentence
                            cyclic += (sentence, tokenization)

        if comm.entityMentionSetList:
            for mention_set in comm.entityMentionSetList:
                cyclic += (mention_set, mention_set.mentionList)
                for mention in mention_set.mentionList:
                    mention_for[mention.uuid.uuidString] = mention
                    cyclic.append(mention.tokens)
                    try:
                        mention.tokens.tokenization = tokenization_for[mention.tokens.tokenizationId.uuidString]
                    except KeyError:
                        mention.tokens.tokenization = None
                    mention.childMentionList = children = []
                    mention.parentMention = None
                    mention.entityMentionSet = mention_set
                    cyclic += (mention, children)
                for mention in mention_set.mentionList:
                    if mention.childMentionIdList:
                        for child_id in mention.childMentionIdList:
                            child = mention_for[child_id.uuidString]
                            child.parentMention = mention
                            mention.childMentionList.append(child)

        if comm.entitySetList:
            for entity_set in comm.entitySetList:
                cyclic += (entity_set, entity_set.entityList)
                for entity in entity_set.entityList:
                    entity_for[entity.uuid.uuidString] = entity
                    entity.mentionList = mentions = []
                    cyclic += (entity, mentions)
                    for mention_id in entity.mentionIdList:
                        mentions.append(mention_for[mention_id.uuidString])
                    entity.entitySet = entity_set

        if comm.situationMentionSetList:
            for sit_mention_set in comm.situationMentionSetList:
                cyclic += (sit_mention_set, sit_mention_set.mentionList)
                for sit_mention in sit_mention_set.mentionList:
                    sit_mention_for[sit_mention.uuid.uuidString] = sit_mention
                    arguments = _lun(sit_mention.argumentList)
                    cyclic += (sit_mention, arguments)
                    for argument in arguments:
                        cyclic.append(argument)
                        _link(argument, "entityMentionId", "entityMention", mention_for)
                        _link(argument, "situationMentionId", "situationMention", sit_mention_for)
                        if argument.tokens:
                            cyclic.append(argument.tokens)
                            argument.tokens.tokenization = tokenization_for[argument.tokens.tokenizationId.uuidString]
                    if sit_mention.tokens:
                        tokens = sit_mention.tokens
                        cyclic.append(tokens)
                        try:
                            tokens.tokenization = tokenization_for[tokens.tokenizationId.uuidString]
                        except KeyError:
                            tokens.tokenization = None
                    sit_mention.situationMentionSet = sit_mention_set

        if comm.situationSetList:
            for situation_set in comm.situationSetList:
                cyclic += (situation_set, situation_set.situationList)
                for situation in situation_set.situationList:
                    situation_for[situation.uuid.uuidString] = situation
                    if situation.mentionIdList:
                        situation.mentionList = mentions = []
                        cyclic.append(mentions)
                        for mention_id in situation.mentionIdList:
                            mentions.append(sit_mention_for[mention_id.uuidString])
                    else:
                        situation.mentionList = None
                    arguments = _lun(situation.argumentList)
                    cyclic += (situation, arguments)
                    for argument in arguments:
                        cyclic.append(argument)
                        _link(argument, "entityId", "entity", entity_for)
                        _link(argument, "situationId", "situation", situation_for)
                    situation.situationSet = situation_set
    finally:
        _hold(comm, cyclic)


_hold = _holder()

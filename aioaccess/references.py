"""``add_references_to_communication``: concrete-python's in-memory links between a Communication's parts.

Concrete points from one object to another by UUID; this adds the object
references concrete-python adds (same names, same rules): ``comm.*ForUUID``
maps, ``tokenization`` on each TokenRefSequence, ``sentence`` on each
Tokenization, ``mentionList`` on Entities and Situations, ``childMentionList``
/ ``parentMention`` / ``entityMentionSet`` on EntityMentions, ``entity``,
``situation``, ``entityMention``, ``situationMention`` on arguments, and the
set back-pointers.  The references are plain attributes: encoding ignores them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["add_references_to_communication"]


def add_references_to_communication(comm: Any) -> None:
    """Add the reference attributes to ``comm`` (in place), as concrete-python does."""
    comm.entityForUUID = {}
    comm.entityMentionForUUID = {}
    comm.sectionForUUID = {}
    comm.sentenceForUUID = {}
    comm.situationForUUID = {}
    comm.situationMentionForUUID = {}
    comm.tokenizationForUUID = {}
    tokenizations = comm.tokenizationForUUID
    for section in comm.sectionList or ():
        comm.sectionForUUID[section.uuid.uuidString] = section
        for sentence in section.sentenceList or ():
            comm.sentenceForUUID[sentence.uuid.uuidString] = sentence
            if sentence.tokenization:
                tokenizations[sentence.tokenization.uuid.uuidString] = sentence.tokenization
                sentence.tokenization.sentence = sentence
    mentions = comm.entityMentionForUUID
    for mention_set in comm.entityMentionSetList or ():
        for mention in mention_set.mentionList:
            mentions[mention.uuid.uuidString] = mention
            mention.tokens.tokenization = tokenizations.get(mention.tokens.tokenizationId.uuidString)
            mention.childMentionList = []
            mention.parentMention = None
            mention.entityMentionSet = mention_set
        for mention in mention_set.mentionList:
            for child_id in mention.childMentionIdList or ():
                child = mentions[child_id.uuidString]
                child.parentMention = mention
                mention.childMentionList.append(child)
    for entity_set in comm.entitySetList or ():
        for entity in entity_set.entityList:
            comm.entityForUUID[entity.uuid.uuidString] = entity
            entity.mentionList = [mentions[m.uuidString] for m in entity.mentionIdList]
            entity.entitySet = entity_set
    situation_mentions = comm.situationMentionForUUID
    for mention_set in comm.situationMentionSetList or ():
        for mention in mention_set.mentionList:
            situation_mentions[mention.uuid.uuidString] = mention
            for argument in mention.argumentList or ():
                argument.entityMention = (mentions[argument.entityMentionId.uuidString]
                                          if argument.entityMentionId else None)
                argument.situationMention = (situation_mentions[argument.situationMentionId.uuidString]
                                             if argument.situationMentionId else None)
                if argument.tokens:
                    argument.tokens.tokenization = tokenizations[argument.tokens.tokenizationId.uuidString]
            if mention.tokens:
                mention.tokens.tokenization = tokenizations.get(mention.tokens.tokenizationId.uuidString)
            mention.situationMentionSet = mention_set
    for situation_set in comm.situationSetList or ():
        for situation in situation_set.situationList:
            comm.situationForUUID[situation.uuid.uuidString] = situation
            situation.mentionList = ([situation_mentions[m.uuidString] for m in situation.mentionIdList]
                                     if situation.mentionIdList else None)
            for argument in situation.argumentList or ():
                argument.entity = comm.entityForUUID[argument.entityId.uuidString] if argument.entityId else None
                argument.situation = (comm.situationForUUID[argument.situationId.uuidString]
                                      if argument.situationId else None)
            situation.situationSet = situation_set

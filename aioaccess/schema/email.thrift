/** Metadata specific to email messages. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.email

/** An email address with an optional display name. */
struct EmailAddress {
  1: optional string address
  2: optional string displayName
}

/** Header and envelope information of an email message. */
struct EmailCommunicationInfo {
  1: optional string messageId
  2: optional string contentType
  3: optional string userAgent
  4: optional list<string> inReplyToList
  5: optional list<string> referenceList
  6: optional EmailAddress senderAddress
  7: optional EmailAddress returnPathAddress
  8: optional list<EmailAddress> toAddressList
  9: optional list<EmailAddress> ccAddressList
  10: optional list<EmailAddress> bccAddressList
  11: optional string emailFolder
  12: optional string subject
  13: optional list<string> quotedAddresses
  14: optional list<string> attachmentPaths
  15: optional string salutation
  16: optional string signature
}

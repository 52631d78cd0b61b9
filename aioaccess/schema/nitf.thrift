/** Metadata from News Industry Text Format (NITF) documents. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.nitf

/** Fields extracted from an NITF news article, as found in e.g. the New York Times Annotated Corpus. */
struct NITFInfo {
  1: optional string alternateURL
  2: optional string articleAbstract
  3: optional string authorBiography
  4: optional string banner
  5: optional list<string> biographicalCategoryList
  6: optional string columnName
  7: optional i32 columnNumber
  8: optional i64 correctionDate
  9: optional string correctionText
  10: optional string credit
  11: optional string dayOfWeek
  12: optional list<string> descriptorList
  13: optional string featurePage
  14: optional list<string> generalOnlineDescriptorList
  15: optional i32 guid
  16: optional string kicker
  17: optional list<string> leadParagraphList
  18: optional list<string> locationList
  19: optional list<string> nameList
  20: optional string newsDesk
  21: optional string normalizedByline
  22: optional list<string> onlineDescriptorList
  23: optional string onlineHeadline
  24: optional string onlineLeadParagraph
  25: optional list<string> onlineLocationList
  26: optional list<string> onlineOrganizationList
  27: optional list<string> onlinePeople
  28: optional list<string> onlineSectionList
  29: optional list<string> onlineTitleList
  30: optional list<string> organizationList
  31: optional i32 page
  32: optional list<string> peopleList
  33: optional i64 publicationDate
  34: optional i32 publicationDayOfMonth
  35: optional i32 publicationMonth
  36: optional i32 publicationYear
  37: optional string section
  38: optional string seriesName
  39: optional string slug
  40: optional list<string> taxonomicClassifierList
  41: optional list<string> titleList
  42: optional list<string> typesOfMaterialList
  43: optional string url
  44: optional i32 wordCount
}

/** Metadata specific to tweets, modeled on the Twitter API. */

namespace java edu.jhu.hlt.concrete
namespace py concrete.twitter

/** A Twitter user profile. */
struct TwitterUser {
  1: optional i64 id
  3: optional string name
  4: optional string screenName
  5: optional string lang
  6: optional bool geoEnabled
  7: optional string createdAt
  8: optional i32 friendsCount
  9: optional i32 statusesCount
  10: optional bool verified
  11: optional i32 listedCount
  12: optional i32 favouritesCount
  13: optional i32 followersCount
  14: optional string location
  15: optional string timeZone
  16: optional string description
  18: optional i32 utcOffset
  19: optional string url
}

/** A latitude/longitude pair. */
struct TwitterLatLong {
  1: optional double latitude
  2: optional double longitude
}

/** A polygon bounding a Twitter place. */
struct BoundingBox {
  1: optional string type
  2: required list<TwitterLatLong> coordinateList
}

/** Optional address attributes of a Twitter place. */
struct PlaceAttributes {
  1: optional string streetAddress
  2: optional string region
  3: optional string locality
}

/** A mention of a Twitter user in a tweet. */
struct UserMention {
  1: optional i32 startOffset
  2: optional i32 endOffset
  4: optional string screenName
  5: optional string name
  6: optional i64 id
}

/** A URL contained in a tweet. */
struct URL {
  1: optional i32 startOffset
  2: optional i32 endOffset
  3: optional string expandedUrl
  4: optional string url
  5: optional string displayUrl
}

/** A hashtag contained in a tweet. */
struct HashTag {
  1: optional string text
  2: optional i32 startOffset
  3: optional i32 endOffset
}

/** Hashtags, URLs and user mentions extracted from a tweet. */
struct TwitterEntities {
  1: optional list<HashTag> hashtagList
  2: optional list<URL> urlList
  3: optional list<UserMention> userMentionList
}

/** A named place associated with a tweet. */
struct TwitterPlace {
  1: optional string placeType
  2: optional string countryCode
  3: optional string country
  4: optional string fullName
  5: optional string name
  6: optional string id
  7: optional string url
  8: optional BoundingBox boundingBox
  9: optional PlaceAttributes attributes
}

/** A geographic point associated with a tweet. */
struct TwitterCoordinates {
  1: optional string type
  2: optional TwitterLatLong coordinates
}

/** Metadata about a tweet. */
struct TweetInfo {
  1: optional i64 id
  3: optional string text
  4: optional string createdAt
  5: optional TwitterUser user
  6: optional bool truncated
  7: optional TwitterEntities entities
  8: optional string source
  9: optional TwitterCoordinates coordinates
  11: optional TwitterPlace place
  12: optional bool favorited
  13: optional bool retweeted
  14: optional i32 retweetCount
  15: optional string inReplyToScreenName
  16: optional i64 inReplyToStatusId
  18: optional i64 inReplyToUserId
  19: optional string retweetedScreenName
  20: optional i64 retweetedStatusId
  21: optional i64 retweetedUserId
}

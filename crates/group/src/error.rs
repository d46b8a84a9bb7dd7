//! Kafka error codes returned by the coordinator.

/// The Kafka error codes this crate returns, with Kafka's numbers ([`ErrorCode::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ErrorCode {
    /// 0: no error.
    #[default]
    None,
    /// -1: an unexpected error.
    UnknownServerError,
    /// 3: the topic cannot exist (its name does not fit a record).
    UnknownTopicOrPartition,
    /// 12: the offset's metadata string is longer than 4096 bytes.
    OffsetMetadataTooLarge,
    /// 14: the coordinator is still replaying its partition.
    CoordinatorLoadInProgress,
    /// 15: the coordinator is not available.
    CoordinatorNotAvailable,
    /// 16: this broker is not the group's coordinator (used by the server).
    NotCoordinator,
    /// 22: the generation id is not the group's.
    IllegalGeneration,
    /// 23: the protocol type or protocols do not match the group's.
    InconsistentGroupProtocol,
    /// 24: the group id is empty.
    InvalidGroupId,
    /// 25: the member id is not a member of the group.
    UnknownMemberId,
    /// 26: the session timeout is outside the configured bounds.
    InvalidSessionTimeout,
    /// 27: the group is rebalancing; rejoin.
    RebalanceInProgress,
    /// 42: a field does not fit Kafka's record format (strings over 32767 bytes).
    InvalidRequest,
    /// 68: the group still has members.
    NonEmptyGroup,
    /// 69: the group does not exist.
    GroupIdNotFound,
    /// 79: the member must rejoin with the member id it was given.
    MemberIdRequired,
    /// 81: the group has reached its maximum size.
    GroupMaxSizeReached,
    /// 82: another member with the same `group.instance.id` replaced this one.
    FencedInstanceId,
    /// 86: a member of the group is subscribed to the topic.
    GroupSubscribedToTopic,
    /// 88: an open transaction committed an offset of this partition (OffsetFetch with
    /// RequireStable).
    UnstableOffsetCommit,
    /// 110: the member epoch is not the member's (ConsumerGroupHeartbeat).
    FencedMemberEpoch,
    /// 111: a static member's instance id is still held by a member that has not left.
    UnreleasedInstanceId,
    /// 112: the requested server-side assignor is not configured.
    UnsupportedAssignor,
    /// 113: an offset commit of a consumer-protocol member carries an old member epoch.
    StaleMemberEpoch,
    /// 128: a subscription's regular expression does not compile.
    InvalidRegularExpression,
    /// 35: the request's version cannot serve this group (an old OffsetCommit from a
    /// consumer-protocol member).
    UnsupportedVersion,
}

impl ErrorCode {
    /// Kafka's numeric error code.
    pub fn code(self) -> i16 {
        match self {
            ErrorCode::None => 0,
            ErrorCode::UnknownServerError => -1,
            ErrorCode::UnknownTopicOrPartition => 3,
            ErrorCode::OffsetMetadataTooLarge => 12,
            ErrorCode::CoordinatorLoadInProgress => 14,
            ErrorCode::CoordinatorNotAvailable => 15,
            ErrorCode::NotCoordinator => 16,
            ErrorCode::IllegalGeneration => 22,
            ErrorCode::InconsistentGroupProtocol => 23,
            ErrorCode::InvalidGroupId => 24,
            ErrorCode::UnknownMemberId => 25,
            ErrorCode::InvalidSessionTimeout => 26,
            ErrorCode::RebalanceInProgress => 27,
            ErrorCode::InvalidRequest => 42,
            ErrorCode::NonEmptyGroup => 68,
            ErrorCode::GroupIdNotFound => 69,
            ErrorCode::MemberIdRequired => 79,
            ErrorCode::GroupMaxSizeReached => 81,
            ErrorCode::FencedInstanceId => 82,
            ErrorCode::GroupSubscribedToTopic => 86,
            ErrorCode::UnstableOffsetCommit => 88,
            ErrorCode::FencedMemberEpoch => 110,
            ErrorCode::UnreleasedInstanceId => 111,
            ErrorCode::UnsupportedAssignor => 112,
            ErrorCode::StaleMemberEpoch => 113,
            ErrorCode::InvalidRegularExpression => 128,
            ErrorCode::UnsupportedVersion => 35,
        }
    }

    /// True for [`ErrorCode::None`].
    pub fn is_ok(self) -> bool {
        self == ErrorCode::None
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn codes_are_kafkas() {
        assert_eq!(ErrorCode::None.code(), 0);
        assert_eq!(ErrorCode::UnknownServerError.code(), -1);
        assert_eq!(ErrorCode::UnknownMemberId.code(), 25);
        assert_eq!(ErrorCode::IllegalGeneration.code(), 22);
        assert_eq!(ErrorCode::RebalanceInProgress.code(), 27);
        assert_eq!(ErrorCode::MemberIdRequired.code(), 79);
        assert_eq!(ErrorCode::FencedInstanceId.code(), 82);
        assert_eq!(ErrorCode::GroupSubscribedToTopic.code(), 86);
        assert_eq!(ErrorCode::UnknownTopicOrPartition.code(), 3);
        assert_eq!(ErrorCode::InvalidRequest.code(), 42);
        assert_eq!(ErrorCode::CoordinatorLoadInProgress.code(), 14);
        assert_eq!(ErrorCode::GroupMaxSizeReached.code(), 81);
        assert!(ErrorCode::None.is_ok());
        assert!(!ErrorCode::NotCoordinator.is_ok());
    }
}

//! Numbers from the kernel's uapi headers that the encoder and the reply
//! parser use, each under the header it comes from.

// <linux/netlink.h>
pub(super) const NLMSG_HDRLEN: usize = 16;
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_ACK: u16 = 0x4;
pub(super) const NLM_F_CREATE: u16 = 0x400;
pub(super) const NLM_F_CAPPED: u16 = 0x100;
pub(super) const NLM_F_ACK_TLVS: u16 = 0x200;
pub(super) const NLMSGERR_ATTR_MSG: u16 = 1;
pub(super) const NLMSGERR_ATTR_OFFS: u16 = 2;
pub(super) const NLA_F_NESTED: u16 = 0x8000;
pub(super) const NLA_TYPE_MASK: u16 = 0x3fff;
pub(super) const AF_UNSPEC: u8 = 0;

// <linux/netfilter/nfnetlink.h>
pub(super) const NFNETLINK_V0: u8 = 0;
pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub(super) const NFNL_MSG_BATCH_BEGIN: u16 = 0x10; // NLMSG_MIN_TYPE
pub(super) const NFNL_MSG_BATCH_END: u16 = 0x11;

// <linux/netfilter/nf_tables.h>
pub(super) const NFT_MSG_NEWSETELEM: u16 = 12;
pub(super) const NFT_MSG_DELSETELEM: u16 = 14;
pub(super) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(super) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(super) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub(super) const NFTA_LIST_ELEM: u16 = 1;
pub(super) const NFTA_SET_ELEM_KEY: u16 = 1;
pub(super) const NFTA_SET_ELEM_DATA: u16 = 2;
pub(super) const NFTA_SET_ELEM_FLAGS: u16 = 3;
pub(super) const NFTA_SET_ELEM_KEY_END: u16 = 10;
pub(super) const NFTA_DATA_VALUE: u16 = 1;
pub(super) const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
pub(super) const NFT_DATA_VALUE_MAXLEN: usize = 64;
pub(super) const NFT_NAME_MAXLEN: usize = 256; // including the NUL

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::Family;

    #[test]
    fn constants_match_the_uapi_headers() {
        assert_eq!(NFNL_SUBSYS_NFTABLES as i32, libc::NFNL_SUBSYS_NFTABLES);
        assert_eq!(NFNL_MSG_BATCH_BEGIN as i32, libc::NFNL_MSG_BATCH_BEGIN);
        assert_eq!(NFNL_MSG_BATCH_END as i32, libc::NFNL_MSG_BATCH_END);
        assert_eq!(NFT_MSG_NEWSETELEM as i32, libc::NFT_MSG_NEWSETELEM);
        assert_eq!(NFT_MSG_DELSETELEM as i32, libc::NFT_MSG_DELSETELEM);
        assert_eq!(NFT_SET_ELEM_INTERVAL_END as i32, libc::NFT_SET_ELEM_INTERVAL_END);
        assert_eq!(NFT_DATA_VALUE_MAXLEN as i32, libc::NFT_DATA_VALUE_MAXLEN);
        assert_eq!(NLM_F_CAPPED as i32, libc::NLM_F_CAPPED);
        assert_eq!(NLM_F_ACK_TLVS as i32, libc::NLM_F_ACK_TLVS);
        assert_eq!(NLA_F_NESTED as i32, libc::NLA_F_NESTED);
        assert_eq!(NLA_TYPE_MASK, libc::NLA_TYPE_MASK as u16);
        assert_eq!(Family::Inet.nfproto() as i32, libc::NFPROTO_INET);
        assert_eq!(Family::Ip.nfproto() as i32, libc::NFPROTO_IPV4);
        assert_eq!(Family::Ip6.nfproto() as i32, libc::NFPROTO_IPV6);
        assert_eq!(Family::Bridge.nfproto() as i32, libc::NFPROTO_BRIDGE);
    }
}

//! Numbers from the kernel's uapi headers that the encoder and the reply
//! parser use, each under the header it comes from.

// <linux/netlink.h>
pub(super) const NLMSG_HDRLEN: usize = 16;
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLMSG_DONE: u16 = 3;
pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_ACK: u16 = 0x4;
pub(super) const NLM_F_DUMP: u16 = 0x300; // NLM_F_ROOT | NLM_F_MATCH
pub(super) const NLM_F_APPEND: u16 = 0x800;
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

// <linux/netfilter/nf_tables.h>: messages
pub(super) const NFT_MSG_NEWTABLE: u16 = 0;
pub(super) const NFT_MSG_DELTABLE: u16 = 2;
pub(super) const NFT_MSG_NEWCHAIN: u16 = 3;
pub(super) const NFT_MSG_GETCHAIN: u16 = 4;
pub(super) const NFT_MSG_NEWRULE: u16 = 6;
pub(super) const NFT_MSG_GETRULE: u16 = 7;
pub(super) const NFT_MSG_NEWSET: u16 = 9;
pub(super) const NFT_MSG_NEWSETELEM: u16 = 12;
pub(super) const NFT_MSG_DELSETELEM: u16 = 14;

// <linux/netfilter/nf_tables.h>: tables, chains, rules, sets
pub(super) const NFTA_TABLE_NAME: u16 = 1;
pub(super) const NFTA_TABLE_FLAGS: u16 = 2;
pub(super) const NFTA_TABLE_USERDATA: u16 = 6;
pub(super) const NFTA_CHAIN_TABLE: u16 = 1;
pub(super) const NFTA_CHAIN_NAME: u16 = 3;
pub(super) const NFTA_CHAIN_HOOK: u16 = 4;
pub(super) const NFTA_CHAIN_POLICY: u16 = 5;
pub(super) const NFTA_CHAIN_TYPE: u16 = 7;
pub(super) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(super) const NFTA_HOOK_PRIORITY: u16 = 2;
pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_HANDLE: u16 = 3;
pub(super) const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(super) const NFTA_RULE_COMPAT: u16 = 5;
pub(super) const NFTA_RULE_COMPAT_PROTO: u16 = 1;
pub(super) const NFTA_RULE_COMPAT_FLAGS: u16 = 2;
pub(super) const NFTA_EXPR_NAME: u16 = 1;
pub(super) const NFTA_EXPR_DATA: u16 = 2;
pub(super) const NFTA_SET_TABLE: u16 = 1;
pub(super) const NFTA_SET_NAME: u16 = 2;
pub(super) const NFTA_SET_FLAGS: u16 = 3;
pub(super) const NFTA_SET_KEY_TYPE: u16 = 4;
pub(super) const NFTA_SET_KEY_LEN: u16 = 5;
pub(super) const NFTA_SET_DATA_TYPE: u16 = 6;
pub(super) const NFTA_SET_DATA_LEN: u16 = 7;
pub(super) const NFTA_SET_DESC: u16 = 9;
pub(super) const NFTA_SET_ID: u16 = 10;
pub(super) const NFTA_SET_USERDATA: u16 = 13;
pub(super) const NFTA_SET_DESC_SIZE: u16 = 1;
pub(super) const NFTA_SET_DESC_CONCAT: u16 = 2;
pub(super) const NFTA_SET_FIELD_LEN: u16 = 1;
pub(super) const NFT_SET_ANONYMOUS: u32 = 0x1;
pub(super) const NFT_SET_CONSTANT: u32 = 0x2;
pub(super) const NFT_SET_INTERVAL: u32 = 0x4;
pub(super) const NFT_SET_MAP: u32 = 0x8;
pub(super) const NFT_SET_CONCAT: u32 = 0x80;

// <linux/netfilter/nf_tables.h>: set elements and data
pub(super) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(super) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(super) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub(super) const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
pub(super) const NFTA_LIST_ELEM: u16 = 1;
pub(super) const NFTA_SET_ELEM_KEY: u16 = 1;
pub(super) const NFTA_SET_ELEM_DATA: u16 = 2;
pub(super) const NFTA_SET_ELEM_FLAGS: u16 = 3;
pub(super) const NFTA_SET_ELEM_KEY_END: u16 = 10;
pub(super) const NFTA_DATA_VALUE: u16 = 1;
pub(super) const NFTA_DATA_VERDICT: u16 = 2;
pub(super) const NFTA_VERDICT_CODE: u16 = 1;
pub(super) const NFTA_VERDICT_CHAIN: u16 = 2;
pub(super) const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
pub(super) const NFT_DATA_VALUE_MAXLEN: usize = 64;
pub(super) const NFT_NAME_MAXLEN: usize = 256; // including the NUL

// <linux/netfilter/nf_tables.h>: expressions, by their NFTA_*_ attributes
pub(super) const NFTA_META_DREG: u16 = 1;
pub(super) const NFTA_META_KEY: u16 = 2;
pub(super) const NFTA_META_SREG: u16 = 3;
pub(super) const NFTA_PAYLOAD_DREG: u16 = 1;
pub(super) const NFTA_PAYLOAD_BASE: u16 = 2;
pub(super) const NFTA_PAYLOAD_OFFSET: u16 = 3;
pub(super) const NFTA_PAYLOAD_LEN: u16 = 4;
pub(super) const NFTA_CT_DREG: u16 = 1;
pub(super) const NFTA_CT_KEY: u16 = 2;
pub(super) const NFTA_FIB_DREG: u16 = 1;
pub(super) const NFTA_FIB_RESULT: u16 = 2;
pub(super) const NFTA_FIB_FLAGS: u16 = 3;
pub(super) const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
pub(super) const NFTA_FIB_F_DADDR: u32 = 1 << 1;
pub(super) const NFTA_CMP_SREG: u16 = 1;
pub(super) const NFTA_CMP_OP: u16 = 2;
pub(super) const NFTA_CMP_DATA: u16 = 3;
pub(super) const NFTA_BITWISE_SREG: u16 = 1;
pub(super) const NFTA_BITWISE_DREG: u16 = 2;
pub(super) const NFTA_BITWISE_LEN: u16 = 3;
pub(super) const NFTA_BITWISE_MASK: u16 = 4;
pub(super) const NFTA_BITWISE_XOR: u16 = 5;
pub(super) const NFTA_BYTEORDER_SREG: u16 = 1;
pub(super) const NFTA_BYTEORDER_DREG: u16 = 2;
pub(super) const NFTA_BYTEORDER_OP: u16 = 3;
pub(super) const NFTA_BYTEORDER_LEN: u16 = 4;
pub(super) const NFTA_BYTEORDER_SIZE: u16 = 5;
pub(super) const NFT_BYTEORDER_HTON: u32 = 1;
pub(super) const NFTA_LOOKUP_SET: u16 = 1;
pub(super) const NFTA_LOOKUP_SREG: u16 = 2;
pub(super) const NFTA_LOOKUP_DREG: u16 = 3;
pub(super) const NFTA_LOOKUP_SET_ID: u16 = 4;
pub(super) const NFTA_IMMEDIATE_DREG: u16 = 1;
pub(super) const NFTA_IMMEDIATE_DATA: u16 = 2;
pub(super) const NFTA_NAT_TYPE: u16 = 1;
pub(super) const NFTA_NAT_FAMILY: u16 = 2;
pub(super) const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
pub(super) const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
pub(super) const NFT_NAT_DNAT: u32 = 1;
pub(super) const NFTA_COUNTER_BYTES: u16 = 1;
pub(super) const NFTA_COUNTER_PACKETS: u16 = 2;
pub(super) const NFTA_MATCH_NAME: u16 = 1;
pub(super) const NFTA_MATCH_REV: u16 = 2;
pub(super) const NFTA_MATCH_INFO: u16 = 3;
pub(super) const NFT_JUMP: i32 = -3;
pub(super) const NFT_RETURN: i32 = -5;

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
        assert_eq!(NLMSG_DONE as i32, libc::NLMSG_DONE);
        assert_eq!(NLM_F_DUMP as i32, libc::NLM_F_DUMP);
        assert_eq!(NLM_F_APPEND as i32, libc::NLM_F_APPEND);
        assert_eq!(NFT_MSG_NEWTABLE as i32, libc::NFT_MSG_NEWTABLE);
        assert_eq!(NFT_MSG_DELTABLE as i32, libc::NFT_MSG_DELTABLE);
        assert_eq!(NFT_MSG_NEWCHAIN as i32, libc::NFT_MSG_NEWCHAIN);
        assert_eq!(NFT_MSG_GETCHAIN as i32, libc::NFT_MSG_GETCHAIN);
        assert_eq!(NFT_MSG_NEWRULE as i32, libc::NFT_MSG_NEWRULE);
        assert_eq!(NFT_MSG_GETRULE as i32, libc::NFT_MSG_GETRULE);
        assert_eq!(NFT_MSG_NEWSET as i32, libc::NFT_MSG_NEWSET);
        assert_eq!(NFT_SET_ANONYMOUS as i32, libc::NFT_SET_ANONYMOUS);
        assert_eq!(NFT_SET_CONSTANT as i32, libc::NFT_SET_CONSTANT);
        assert_eq!(NFT_SET_INTERVAL as i32, libc::NFT_SET_INTERVAL);
        assert_eq!(NFT_SET_MAP as i32, libc::NFT_SET_MAP);
        assert_eq!(NFT_BYTEORDER_HTON as i32, libc::NFT_BYTEORDER_HTON);
        assert_eq!(NFT_NAT_DNAT as i32, libc::NFT_NAT_DNAT);
        assert_eq!(NFT_JUMP, libc::NFT_JUMP);
        assert_eq!(NFT_RETURN, libc::NFT_RETURN);
        assert_eq!(Family::Inet.nfproto() as i32, libc::NFPROTO_INET);
        assert_eq!(Family::Ip.nfproto() as i32, libc::NFPROTO_IPV4);
        assert_eq!(Family::Ip6.nfproto() as i32, libc::NFPROTO_IPV6);
        assert_eq!(Family::Bridge.nfproto() as i32, libc::NFPROTO_BRIDGE);
    }
}

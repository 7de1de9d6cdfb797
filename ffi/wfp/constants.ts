/**
 * Numeric constants of the WFP API that Palisade passes or reads, with
 * the values of the Windows SDK headers. The layout check compiles each
 * one that MinGW-w64's headers also define against that definition.
 *
 * @module
 */

/** `FWP_DATA_TYPE`: which member of a value union is set. */
export const FWP_DATA_TYPE = {
  FWP_EMPTY: 0,
  FWP_UINT8: 1,
  FWP_UINT16: 2,
  FWP_UINT32: 3,
  FWP_UINT64: 4,
  FWP_BYTE_ARRAY16_TYPE: 11,
  FWP_BYTE_BLOB_TYPE: 12,
  FWP_V4_ADDR_MASK: 0x100,
  FWP_V6_ADDR_MASK: 0x101,
  FWP_RANGE_TYPE: 0x102,
} as const;

/** `FWP_MATCH_TYPE`: how a condition compares the packet's field. */
export const FWP_MATCH_TYPE = {
  FWP_MATCH_EQUAL: 0,
  FWP_MATCH_RANGE: 5,
} as const;

/** `FWP_ACTION_TYPE`: what a matching filter decides (terminating). */
export const FWP_ACTION = {
  FWP_ACTION_BLOCK: 0x1001,
  FWP_ACTION_PERMIT: 0x1002,
} as const;

/** `FWP_FILTER_ENUM_TYPE` of an enumeration template. */
export const FWP_FILTER_ENUM_TYPE = {
  FWP_FILTER_ENUM_FULLY_CONTAINED: 0,
  FWP_FILTER_ENUM_OVERLAPPING: 1,
} as const;

/** `RPC_C_AUTHN_*`: authentication service for `FwpmEngineOpen0`. */
export const RPC_C_AUTHN = {
  RPC_C_AUTHN_WINNT: 10,
  RPC_C_AUTHN_DEFAULT: 0xffffffff,
} as const;

/**
 * Object flags. Not in MinGW-w64's headers, so the layout check cannot
 * compare them; values from the Windows SDK's `fwpmtypes.h`.
 */
export const FWPM_FLAGS = {
  /** Session objects vanish when its engine handle closes. */
  FWPM_SESSION_FLAG_DYNAMIC: 0x1,
  /** The provider survives reboots and service crashes. */
  FWPM_PROVIDER_FLAG_PERSISTENT: 0x1,
  /** The sublayer survives reboots and service crashes. */
  FWPM_SUBLAYER_FLAG_PERSISTENT: 0x1,
  /** The filter survives reboots and service crashes. */
  FWPM_FILTER_FLAG_PERSISTENT: 0x1,
} as const;

/** IANA protocol numbers for `FWPM_CONDITION_IP_PROTOCOL` (`UINT8`). */
export const IP_PROTOCOL = {
  icmp: 1,
  tcp: 6,
  udp: 17,
  icmpv6: 58,
} as const;

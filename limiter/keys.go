package limiter

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// redisKey names the state of one (key, limit) pair:
//
//	<prefix>{<16 hex digits of FNV-64a(key)>}:<alg>:<period µs>:<key>
//
// The hash tag holds only hex digits, so any bytes in key (colons, braces,
// IPv6 addresses, unicode) leave Redis Cluster's hash-tag parsing alone, and
// every script touches one slot. The raw key follows the tag so that two keys
// whose hashes collide still have distinct state.
func redisKey(prefix string, alg Algorithm, l Limit, key string) (string, uint16) {
	tag := keyTag(key)
	var b strings.Builder
	b.Grow(len(prefix) + len(tag) + len(key) + 32)
	b.WriteString(prefix)
	b.WriteByte('{')
	b.WriteString(tag)
	b.WriteString("}:")
	b.WriteString(algCode(alg))
	b.WriteByte(':')
	b.WriteString(strconv.FormatInt(l.Period.Microseconds(), 10))
	b.WriteByte(':')
	b.WriteString(key)
	return b.String(), slot(tag)
}

func keyTag(key string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	var buf [16]byte
	s := strconv.AppendUint(buf[:0], h.Sum64(), 16)
	return strings.Repeat("0", 16-len(s)) + string(s)
}

func algCode(a Algorithm) string {
	switch a {
	case GCRA:
		return "g"
	case SlidingWindow:
		return "s"
	case FixedWindow:
		return "f"
	default:
		return "c"
	}
}

// slot is the Redis Cluster slot of a hash tag: CRC16-XMODEM mod 16384.
func slot(tag string) uint16 {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

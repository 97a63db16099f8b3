package limiter

import (
	"strconv"
	"strings"
)

// redisKey names the state of one (key, limit) pair:
//
//	<prefix>{<16 hex digits of FNV-64a(key)>}:<alg>:<period µs>:<key>
//
// A hex-only hash tag leaves Cluster's tag parsing alone whatever bytes key
// holds; the raw key after it keeps colliding hashes apart.
func redisKey(prefix string, alg Algorithm, l Limit, key string) (rkey, tag string) {
	var num [20]byte
	period := strconv.AppendInt(num[:0], l.Period.Microseconds(), 10)
	var b strings.Builder
	b.Grow(len(prefix) + 16 + 5 + len(period) + len(key))
	b.WriteString(prefix)
	b.WriteByte('{')
	writeHex(&b, fnv64a(key))
	b.WriteString("}:")
	b.WriteString(algCode(alg))
	b.WriteByte(':')
	b.Write(period)
	b.WriteByte(':')
	b.WriteString(key)
	rkey = b.String()
	return rkey, rkey[len(prefix)+1 : len(prefix)+17]
}

func fnv64a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func writeHex(b *strings.Builder, v uint64) {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b.WriteByte(digits[(v>>uint(shift))&0xf])
	}
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
// Only cluster clients compute it.
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

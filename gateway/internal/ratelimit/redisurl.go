package ratelimit

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisConfig is what SLUICE_REDIS_URL describes: exactly one of the three
// option sets is set.
type redisConfig struct {
	single   *redis.Options
	cluster  *redis.ClusterOptions
	failover *redis.FailoverOptions
}

// client builds the go-redis client. go-redis dials lazily: building it
// opens no connection. The client honours context deadlines, so a call the
// limiter gave up on (SLUICE_LIMITER_DEADLINE) does not hold a connection,
// or the limiter's Close, for go-redis's 3s read timeout.
func (c redisConfig) client() redis.UniversalClient {
	switch {
	case c.cluster != nil:
		c.cluster.ContextTimeoutEnabled = true
		return redis.NewClusterClient(c.cluster)
	case c.failover != nil:
		c.failover.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(c.failover)
	}
	c.single.ContextTimeoutEnabled = true
	return redis.NewClient(c.single)
}

// Default ports of Redis servers and Sentinels.
const (
	redisPort    = "6379"
	sentinelPort = "26379"
)

// parseRedisURL reads SLUICE_REDIS_URL (docs/scaling.md, Redis URL): redis://
// for one server or, with several addresses, Redis Cluster seeds;
// redis+cluster:// and redis+sentinel://<hosts>/<master>; rediss for TLS. The
// user and password are the Redis servers'; the Sentinels' are the options
// sentinel_username and sentinel_password, other options go-redis's. Errors
// never repeat the URL, which may hold a password.
func parseRedisURL(raw string) (redisConfig, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return redisConfig{}, errors.New("want redis://host:port, rediss://, redis+cluster:// or redis+sentinel://")
	}
	base, kind, _ := strings.Cut(scheme, "+")
	if base != "redis" && base != "rediss" || kind != "" && kind != "cluster" && kind != "sentinel" {
		return redisConfig{}, fmt.Errorf("scheme %q: want redis, rediss, redis+cluster, rediss+cluster, redis+sentinel or rediss+sentinel", scheme)
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	// The userinfo ends at the last '@' (a path has none), so a password
	// with an unescaped '/' is refused below rather than taken for the
	// host and repeated in the error.
	userinfo := ""
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		userinfo, rest = rest[:i+1], rest[i+1:]
		if strings.ContainsAny(userinfo[:i], "/#") {
			return redisConfig{}, errors.New("user and password: escape the characters / ? # with %XX")
		}
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	port := redisPort
	if kind == "sentinel" {
		port = sentinelPort
	}
	addrs, err := splitAddrs(authority, port)
	if err != nil {
		return redisConfig{}, err
	}
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return redisConfig{}, fmt.Errorf("options: %w", err)
	}
	if len(addrs) > 1 && kind == "" {
		kind = "cluster"
	}
	switch kind {
	case "cluster":
		if strings.Trim(path, "/") != "" {
			return redisConfig{}, fmt.Errorf("path %q: a Redis Cluster has no database number", path)
		}
		for _, a := range addrs[1:] {
			query.Add("addr", a)
		}
		o, err := redis.ParseClusterURL(base + "://" + userinfo + addrs[0] + "?" + query.Encode())
		if err != nil {
			return redisConfig{}, hideURL(err)
		}
		return redisConfig{cluster: o}, nil
	case "sentinel":
		return parseSentinel(base, userinfo, addrs, path, query)
	}
	o, err := redis.ParseURL(base + "://" + userinfo + addrs[0] + path + "?" + query.Encode())
	if err != nil {
		return redisConfig{}, hideURL(err)
	}
	return redisConfig{single: o}, nil
}

// parseSentinel reads the path /<master>[/db] and the Sentinels' credentials,
// and leaves the rest to go-redis.
func parseSentinel(base, userinfo string, addrs []string, path string, query url.Values) (redisConfig, error) {
	master, db, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if master == "" {
		return redisConfig{}, errors.New("sentinel: want the master name as the path, e.g. redis+sentinel://h1:26379,h2:26379/mymaster")
	}
	query.Set("master_name", master)
	sentinelUser, sentinelPassword := query.Get("sentinel_username"), query.Get("sentinel_password")
	query.Del("sentinel_username")
	query.Del("sentinel_password")
	for _, a := range addrs[1:] {
		query.Add("addr", a)
	}
	if db != "" {
		db = "/" + db
	}
	// go-redis reads the URL's user as the Sentinels'; here it is the
	// master's, so it is set after parsing.
	o, err := redis.ParseFailoverURL(base + "://" + addrs[0] + db + "?" + query.Encode())
	if err != nil {
		return redisConfig{}, hideURL(err)
	}
	if userinfo != "" {
		u, err := url.Parse("redis://" + userinfo + "host")
		if err != nil {
			return redisConfig{}, errors.New("user and password: not valid URL userinfo (escape special characters with %XX)")
		}
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	o.SentinelUsername, o.SentinelPassword = sentinelUser, sentinelPassword
	return redisConfig{failover: o}, nil
}

// splitAddrs splits "h1:p1,h2,[::1]:p3" into host:port addresses, adding
// the default port where it is missing.
func splitAddrs(authority, defaultPort string) ([]string, error) {
	var addrs []string
	for a := range strings.SplitSeq(authority, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, errors.New("want at least one host, and no empty address between commas")
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			// No port: a bare host or a bracketed IPv6 literal.
			host, port = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), defaultPort
			if strings.ContainsAny(host, "[]") || strings.Contains(host, ":") && !strings.HasPrefix(a, "[") {
				return nil, fmt.Errorf("address %q: want host:port", a)
			}
		}
		if host == "" || port == "" {
			return nil, fmt.Errorf("address %q: want host:port", a)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	return addrs, nil
}

// hideURL drops the URL that net/url errors repeat, since it may hold a
// password.
func hideURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

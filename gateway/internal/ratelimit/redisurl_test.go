package ratelimit

import (
	"strings"
	"testing"
)

func TestParseRedisURL(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want string // what the parsed options say, see describe
	}{
		{"redis://127.0.0.1:6379", "single 127.0.0.1:6379 db=0 tls=false"},
		{"redis://:s3cret@redis.example:6380/2?dial_timeout=3s", "single redis.example:6380 db=2 tls=false user= password=s3cret"},
		{"rediss://user:pw@redis.example", "single redis.example:6379 db=0 tls=true user=user password=pw"},
		{"rediss://user:p@ss@redis.example", "single redis.example:6379 db=0 tls=true user=user password=p@ss"},
		{"redis://[::1]:7000", "single [::1]:7000 db=0 tls=false"},
		{"redis://h1:6379,h2:6380,h3", "cluster h1:6379,h2:6380,h3:6379 tls=false"},
		{"rediss://u:p@h1:6379,h2:6379?pool_size=20", "cluster h1:6379,h2:6379 tls=true user=u password=p"},
		{"redis+cluster://config.example:6379", "cluster config.example:6379 tls=false"},
		{"redis+sentinel://s1:26379,s2,s3:26380/mymaster", "sentinel mymaster s1:26379,s2:26379,s3:26380 db=0 tls=false"},
		{"rediss+sentinel://:pw@s1/mymaster/3?sentinel_password=spw", "sentinel mymaster s1:26379 db=3 tls=true user= password=pw sentinel_password=spw"},
	} {
		c, err := parseRedisURL(tt.url)
		if err != nil {
			t.Errorf("%s: %v", tt.url, err)
			continue
		}
		if got := describe(c); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.url, got, tt.want)
		}
	}
}

func TestParseRedisURLErrors(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"127.0.0.1:6379", "want redis://"},
		{"http://h:1", `scheme "http"`},
		{"redis+cloud://h:1", `scheme "redis+cloud"`},
		{"redis://", "at least one host"},
		{"redis://h1:6379,,h2:6379", "no empty address"},
		{"redis://h1:6379,h2:6379/1", "no database number"},
		{"redis+sentinel://s1:26379", "master name"},
		{"redis://:hunter2@h:6379/x", "database number"},
		{"redis://:hun/ter2@h:6379", "escape"},
		{"redis://:hunter2/@h:6379/1", "escape"},
		{"redis://:hunter2@h:6379?no_such_option=1", "no_such_option"},
		{"redis://:hunter2@h:6379?dial_timeout=%zz", "escape"},
	} {
		_, err := parseRedisURL(tt.url)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one saying %q", tt.url, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error repeats the password: %v", tt.url, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://h:6379":                      "redis://h:6379",
		"redis://:pw@h:6379/0":                "redis://:xxxxx@h:6379/0",
		"rediss://user:p@ss@h1,h2?x=1":        "rediss://user:xxxxx@h1,h2?x=1",
		"redis+sentinel://u@s1/master":        "redis+sentinel://u@s1/master",
		"redis+sentinel://u:pw@s1,s2/m?db=1/": "redis+sentinel://u:xxxxx@s1,s2/m?db=1/",
		"nonsense":                            "(not a URL)",
		"redis://:pa/ss@h:6379":               "redis://:xxxxx@h:6379",
		"redis://:pa?ss@h:6379":               "redis://:xxxxx@h:6379",
		"redis+sentinel://s1/m?sentinel_password=spw&dial_timeout=1s":       "redis+sentinel://s1/m?sentinel_password=xxxxx&dial_timeout=1s",
		"rediss+sentinel://:pw@s1/m?sentinel_username=u&sentinel_password=": "rediss+sentinel://:xxxxx@s1/m?sentinel_username=u&sentinel_password=xxxxx",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%s) = %s, want %s", in, got, want)
		}
	}
}

// describe summarises the options a URL gave.
func describe(c redisConfig) string {
	var b strings.Builder
	tls := func(on bool) {
		if on {
			b.WriteString(" tls=true")
		} else {
			b.WriteString(" tls=false")
		}
	}
	creds := func(user, password string) {
		if user != "" || password != "" {
			b.WriteString(" user=" + user + " password=" + password)
		}
	}
	switch {
	case c.single != nil:
		o := c.single
		b.WriteString("single " + o.Addr + " db=" + itoa(o.DB))
		tls(o.TLSConfig != nil)
		creds(o.Username, o.Password)
	case c.cluster != nil:
		o := c.cluster
		b.WriteString("cluster " + strings.Join(o.Addrs, ","))
		tls(o.TLSConfig != nil)
		creds(o.Username, o.Password)
	case c.failover != nil:
		o := c.failover
		b.WriteString("sentinel " + o.MasterName + " " + strings.Join(o.SentinelAddrs, ",") + " db=" + itoa(o.DB))
		tls(o.TLSConfig != nil)
		creds(o.Username, o.Password)
		if o.SentinelPassword != "" {
			b.WriteString(" sentinel_password=" + o.SentinelPassword)
		}
	}
	return b.String()
}

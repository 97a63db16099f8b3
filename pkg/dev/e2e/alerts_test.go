package e2e

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
)

// The alerting rules in deploy/prometheus/alerts.yml are checked here as
// Prometheus loads them (rulefmt, the parser `promtool check rules` uses),
// against the runbook they point to and the scrape jobs they name;
// TestComposeEnvironmentRuns checks that the binaries expose every metric
// they use.

const alertsFile = "deploy/prometheus/alerts.yml"

type alertRule struct {
	rulefmt.Rule
	metrics []metricUse // every series it selects, in the order written
}

// metricUse is one metric an expression selects, with the names of the
// labels it matches on.
type metricUse struct {
	name   string
	labels []string
	jobs   []string // values of job="..." matchers
}

func loadAlerts(t *testing.T) []alertRule {
	t.Helper()
	root, err := devstack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.ParseFile(filepath.Join(root, alertsFile), false)
	for _, err := range errs {
		t.Errorf("%s: %v", alertsFile, err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	var rules []alertRule
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			expr, err := parser.ParseExpr(r.Expr)
			if err != nil { // rulefmt has parsed it already
				t.Fatalf("%s %s: %v", alertsFile, r.Alert, err)
			}
			rules = append(rules, alertRule{Rule: r, metrics: selected(expr)})
		}
	}
	if len(rules) < 10 {
		t.Fatalf("%s holds only %d rules", alertsFile, len(rules))
	}
	return rules
}

// selected lists the metrics expr reads.
func selected(expr parser.Expr) []metricUse {
	var uses []metricUse
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		u := metricUse{name: vs.Name}
		for _, m := range vs.LabelMatchers {
			if m.Name == "__name__" {
				continue
			}
			u.labels = append(u.labels, m.Name)
			if m.Name == "job" {
				u.jobs = append(u.jobs, m.Value)
			}
		}
		uses = append(uses, u)
		return nil
	})
	return uses
}

// alertMetrics lists the metrics the alerts read that the binaries must
// expose: all but Prometheus' own up.
func alertMetrics(t *testing.T) map[string][]metricUse {
	t.Helper()
	byAlert := map[string][]metricUse{}
	for _, r := range loadAlerts(t) {
		for _, u := range r.metrics {
			if u.name != "up" {
				byAlert[r.Alert] = append(byAlert[r.Alert], u)
			}
		}
	}
	return byAlert
}

func TestAlertRules(t *testing.T) {
	rules := loadAlerts(t)
	runbook := string(repoFile(t, "docs/operations.md"))
	anchors := headingAnchors(runbook)
	for _, m := range regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllStringSubmatch(runbook, -1) {
		if !slices.Contains(anchors, m[1]) {
			t.Errorf("docs/operations.md links to #%s, which is none of its headings", m[1])
		}
	}
	jobs := scrapeJobs(t)
	for _, r := range rules {
		if r.Alert == "" {
			t.Errorf("%s: a recording rule (%s) in the alerts file", alertsFile, r.Record)
			continue
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s has no %s", r.Alert, a)
			}
		}
		if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
			t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
		}
		file, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "#")
		if file != "docs/operations.md" || !slices.Contains(anchors, anchor) {
			t.Errorf("alert %s: runbook_url %q is no heading of docs/operations.md", r.Alert, r.Annotations["runbook_url"])
		}
		if anchor != strings.ToLower(r.Alert) {
			t.Errorf("alert %s: runbook_url %q, want its own entry #%s", r.Alert, r.Annotations["runbook_url"], strings.ToLower(r.Alert))
		}
		for _, u := range r.metrics {
			for _, j := range u.jobs {
				if !slices.Contains(jobs, j) {
					t.Errorf("alert %s selects job %q, which deploy/prometheus/prometheus.yml does not scrape (%v)", r.Alert, j, jobs)
				}
			}
		}
	}
}

// scrapeJobs returns the job names of deploy/prometheus/prometheus.yml and
// checks that it loads the alerts, from where docker-compose.yml mounts them.
func scrapeJobs(t *testing.T) []string {
	t.Helper()
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(repoFile(t, "deploy/prometheus/prometheus.yml"), &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	var compose struct {
		Services map[string]struct {
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(repoFile(t, "docker-compose.yml"), &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	mounted := func(host, container string) bool {
		return slices.ContainsFunc(compose.Services["prometheus"].Volumes, func(v string) bool {
			return strings.HasPrefix(v, "./"+host+":"+container+":") || v == "./"+host+":"+container
		})
	}
	if !mounted("deploy/prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml") {
		t.Fatalf("docker-compose.yml does not mount prometheus.yml at /etc/prometheus/prometheus.yml")
	}
	if !slices.Contains(cfg.RuleFiles, filepath.Base(alertsFile)) {
		t.Errorf("prometheus.yml rule_files %v does not load %s", cfg.RuleFiles, filepath.Base(alertsFile))
	}
	for _, f := range cfg.RuleFiles {
		if !mounted("deploy/prometheus/"+f, "/etc/prometheus/"+f) {
			t.Errorf("prometheus.yml loads %s, which docker-compose.yml does not mount at /etc/prometheus/%s", f, f)
		}
	}
	var jobs []string
	for _, s := range cfg.ScrapeConfigs {
		jobs = append(jobs, s.JobName)
	}
	return jobs
}

// headingAnchors returns the anchors Markdown renderers (GitHub's rule) give
// the headings of md: lower case, punctuation but '-' and '_' dropped,
// spaces as '-'.
func headingAnchors(md string) []string {
	var anchors []string
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	for _, m := range regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`).FindAllStringSubmatch(md, -1) {
		anchors = append(anchors, strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-"))
	}
	return anchors
}

func TestExposedCheckFindsMisnamedMetrics(t *testing.T) {
	exposed := "# HELP x\nsluice_worker_dlq_messages 0\nsluice_gateway_requests_total{code=\"202\"} 1\nsluice_worker_object_bytes_bucket{le=\"1\"} 0\n"
	for _, c := range []struct {
		metric string
		labels []string
		ok     bool
	}{
		{"sluice_worker_dlq_messages", nil, true},
		{"sluice_gateway_requests_total", []string{"code"}, true},
		{"sluice_worker_object_bytes", nil, true},
		{"sluice_worker_dlq_message", nil, false},
		{"sluice_worker_dlq_messages_total", nil, false},
		{"sluice_gateway_requests_total", []string{"status"}, false},
		{"sluice_worker_dlq_messages", []string{"code"}, false},
	} {
		if why := notExposed(t, c.metric, c.labels, exposed); (why == "") != c.ok {
			t.Errorf("notExposed(%s %v) = %q, want ok=%v", c.metric, c.labels, why, c.ok)
		}
	}
}

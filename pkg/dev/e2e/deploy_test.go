package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-ingest/sluice/limiter/redistest"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
)

// The deploy files cannot be run here (no container engine), so these tests
// check them against the binaries they configure: every variable they set is
// one the binary knows, the Dockerfiles build packages that exist, and the
// compose environment, pointed at local servers, runs a working pipeline.

func repoFile(t *testing.T, rel string) []byte {
	t.Helper()
	root, err := devstack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// settingsOf runs bin -h and returns the SLUICE_* variables it lists.
func settingsOf(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -h: %v\n%s", bin, err, out)
	}
	return regexp.MustCompile(`(?m)^\s+(SLUICE_[A-Z0-9_]+)\s`).FindAllString(string(out), -1)
}

func knows(settings []string, v string) bool {
	return slices.ContainsFunc(settings, func(s string) bool { return strings.TrimSpace(s) == v })
}

type composeFile struct {
	Services map[string]struct {
		Environment map[string]string `yaml:"environment"`
		Build       struct {
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
	} `yaml:"services"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal(repoFile(t, "docker-compose.yml"), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

func TestDeployVariablesAreKnown(t *testing.T) {
	bins := map[string][]string{
		"gateway": settingsOf(t, devtest.Binary(t, gatewayPkg)),
		"worker":  settingsOf(t, devtest.Binary(t, workerPkg)),
	}
	check := func(where, bin, v string) {
		if strings.HasPrefix(v, "SLUICE_") && !knows(bins[bin], v) {
			t.Errorf("%s sets %s, which %s does not know", where, v, bin)
		}
	}
	for _, name := range []string{"gateway", "worker"} {
		svc, ok := loadCompose(t).Services[name]
		if !ok {
			t.Fatalf("docker-compose.yml has no %s service", name)
		}
		for v := range svc.Environment {
			check("docker-compose.yml "+name, name, v)
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(repoFile(t, "deploy/k8s/config.yaml")))
	for {
		var doc struct {
			Kind     string                `yaml:"kind"`
			Metadata struct{ Name string } `yaml:"metadata"`
			Data     map[string]string     `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if doc.Kind != "ConfigMap" {
			continue
		}
		for v := range doc.Data {
			switch doc.Metadata.Name {
			case "sluice":
				check("k8s ConfigMap sluice", "gateway", v)
				check("k8s ConfigMap sluice", "worker", v)
			case "sluice-gateway":
				check("k8s ConfigMap sluice-gateway", "gateway", v)
			case "sluice-worker":
				check("k8s ConfigMap sluice-worker", "worker", v)
			default:
				t.Errorf("unexpected ConfigMap %s", doc.Metadata.Name)
			}
		}
	}
}

func TestDockerfilesBuildExistingPackages(t *testing.T) {
	root, err := devstack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gateway", "worker"} {
		df := string(repoFile(t, "deploy/docker/"+name+".Dockerfile"))
		for _, m := range regexp.MustCompile(`(?m)^COPY ([^.\n][^\n]*) \S+/?$`).FindAllStringSubmatch(df, -1) {
			if strings.Contains(m[1], "--from=") {
				continue // copies from a build stage, not the repository
			}
			for _, src := range strings.Fields(m[1]) {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("%s.Dockerfile copies %s: %v", name, src, err)
				}
			}
		}
		pkg := regexp.MustCompile(`go build [^\n]* (\./\S+)`).FindStringSubmatch(df)
		if pkg == nil {
			t.Fatalf("%s.Dockerfile has no go build line", name)
		}
		cmd := exec.Command("go", "list", "-f", "{{.Name}}", pkg[1])
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "main" {
			t.Errorf("%s.Dockerfile builds %s: %v %s", name, pkg[1], err, out)
		}
	}
}

// TestComposeEnvironmentRuns starts the gateway and the worker with the
// environment docker-compose.yml gives them, hosts and ports moved to local
// servers, and the keys file it mounts; one request must land in S3. Then
// every metric the Grafana dashboard queries and the alerts use must be on
// their /metrics.
func TestComposeEnvironmentRuns(t *testing.T) {
	nats, s3, rds := devtest.NATS(t), devtest.S3(t), redistest.Start(t)
	c := loadCompose(t)
	root, _ := devstack.RepoRoot()
	httpAddr, gwAdmin, wkAdmin := devtest.Addr(t), devtest.Addr(t), devtest.Addr(t)
	move := strings.NewReplacer(
		"nats://nats:4222", nats.URL(),
		"redis://redis:6379", rds.URL(),
		"http://s3:9000", s3.Endpoint(),
		"/etc/sluice/keys", filepath.Join(root, "deploy/keys.example"),
	)
	env := func(name string, override map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range c.Services[name].Environment {
			out[k] = move.Replace(v)
		}
		for k, v := range override {
			out[k] = v
		}
		return out
	}
	gw := devtest.Start(t, "gateway", devtest.Binary(t, gatewayPkg), env("gateway", map[string]string{
		"SLUICE_HTTP_ADDR": httpAddr, "SLUICE_ADMIN_ADDR": gwAdmin,
		"SLUICE_RATE_LIMIT": "1000/s", // so the limiter's metrics exist
	}))
	wk := devtest.Start(t, "worker", devtest.Binary(t, workerPkg), env("worker", map[string]string{
		"SLUICE_ADMIN_ADDR": wkAdmin, "SLUICE_BATCH_MAX_AGE": "200ms",
	}))
	devtest.WaitReady(t, gw, "http://"+gwAdmin+"/readyz")
	devtest.WaitReady(t, wk, "http://"+wkAdmin+"/readyz")

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+httpAddr+"/v1/events", strings.NewReader(`{"msg":"hi"}`))
	req.Header.Set("Authorization", "Bearer dev-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, want 202", resp.StatusCode)
	}
	devtest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		objs := devtest.MustReadObjects(t, s3.Client(), devstack.S3Bucket, "tenant=default/")
		return len(objs) == 1 && len(objs[0].Lines) == 1 && strings.Contains(objs[0].Lines[0], `"data":{"msg":"hi"}`)
	}, fmt.Sprintf("the event did not land in s3://%s/tenant=default/", devstack.S3Bucket))

	exposed := scrape(t, "http://"+gwAdmin+"/metrics") + scrape(t, "http://"+wkAdmin+"/metrics")
	for _, m := range dashboardMetrics(t) {
		if why := notExposed(t, m, nil, exposed); why != "" {
			t.Errorf("dashboard queries %s, %s", m, why)
		}
	}
	for alert, uses := range alertMetrics(t) {
		for _, u := range uses {
			if why := notExposed(t, u.name, u.labels, exposed); why != "" {
				t.Errorf("alert %s uses %s, %s", alert, u.name, why)
			}
		}
	}
}

// notExposed says why metric m, selected by the label names labels, cannot
// be read from exposed (the /metrics of the gateway and the worker), or
// returns "" when it can. Labels Prometheus adds to a target (job,
// instance) are not checked.
func notExposed(t *testing.T, m string, labels []string, exposed string) string {
	t.Helper()
	// Counted only when Redis fails; the name must still be in the binary.
	onlyOnFailure := map[string]string{"sluice_gateway_limiter_backend_errors_total": gatewayPkg}
	if pkg, ok := onlyOnFailure[m]; ok {
		bin, err := os.ReadFile(devtest.Binary(t, pkg))
		if err != nil || !bytes.Contains(bin, []byte(m)) {
			return "which " + pkg + " does not define"
		}
		return ""
	}
	series := regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(m)+`(_bucket|_sum|_count)?([{ ].*)$`).FindAllStringSubmatch(exposed, -1)
	if len(series) == 0 {
		return "which neither the gateway nor the worker exposes"
	}
	for _, l := range labels {
		if l == "job" || l == "instance" {
			continue
		}
		if !slices.ContainsFunc(series, func(s []string) bool {
			return regexp.MustCompile(`[{,]` + regexp.QuoteMeta(l) + `="`).MatchString(s[2])
		}) {
			return "which is exposed without the label " + l
		}
	}
	return ""
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	p, err := page(url)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// dashboardMetrics lists the sluice_* metric families the dashboard queries.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, m := range regexp.MustCompile(`sluice_[a-z0-9_]+`).FindAllString(string(repoFile(t, "deploy/grafana/dashboards/sluice.json")), -1) {
		m = strings.TrimSuffix(m, "_bucket")
		if !slices.Contains(names, m) {
			names = append(names, m)
		}
	}
	if len(names) < 15 {
		t.Fatalf("dashboard queries only %d sluice metrics", len(names))
	}
	return names
}

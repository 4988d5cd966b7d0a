package config

import (
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Redis is the store.redis section: where replicas share their budgets.
type Redis struct {
	Addrs    []string
	Cluster  bool
	Username string
	// Password is read from PasswordEnv; it never appears in the file.
	Password    string
	PasswordEnv string
	DB          int64
	KeyPrefix   string
	Timeout     time.Duration // dial and per-command; 0: the client's defaults
}

// redis reads:
//
//	store:
//	  type: redis
//	  redis:
//	    addrs: [10.0.0.5:6379]         # one server, or some Cluster nodes
//	    cluster: false
//	    username: tokenmeter           # ACL user; optional
//	    password_env: REDIS_PASSWORD   # the password, from the environment
//	    db: 0
//	    key_prefix: tm
//	    timeout: 500ms
func (w *walker) redis(r *Redis) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"addrs": func(n *yaml.Node, k string) {
				w.Sequence(n, k, "a list of host:port addresses", func(item *yaml.Node, k string) {
					v, ok := w.Scalar(item, k, "host:port")
					if !ok {
						return
					}
					if i := strings.LastIndexByte(v, ':'); i <= 0 || i == len(v)-1 {
						w.Fail(item, k, "want host:port")
						return
					}
					r.Addrs = append(r.Addrs, v)
				})
			},
			"cluster":  w.boolean(&r.Cluster),
			"username": w.str(&r.Username),
			"password_env": func(n *yaml.Node, k string) {
				w.str(&r.PasswordEnv)(n, k)
				if r.Password = os.Getenv(r.PasswordEnv); r.Password == "" {
					w.Fail(n, k, "this environment variable is empty or unset")
				}
			},
			"db":      w.integer(&r.DB, 0, 1<<20),
			"timeout": w.duration(&r.Timeout),
			"key_prefix": func(n *yaml.Node, k string) {
				w.str(&r.KeyPrefix)(n, k)
				if strings.ContainsAny(r.KeyPrefix, "{}") {
					w.Fail(n, k, "must not contain { or }: they would change the Cluster hash tag")
				}
			},
		})
		if r.Cluster && r.DB != 0 {
			w.Fail(n, join(k, "db"), "Redis Cluster has only database 0")
		}
	}
}

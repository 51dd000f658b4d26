package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"

	"github.com/openflighthpc/flight-power/handler"
)

const listUsage = `usage: flight-power list [--groups [--verbose]] [--json]

Lists the server's nodes with their platform, in the server's order; with
--groups (-g), its group names; with --verbose (-v) too, each group's
members as hostlists.

flags:
  -g, --groups         list groups instead of nodes
  -v, --verbose        with --groups: show each group's members
  --json               print {"nodes":[{"name","platform"}]} or
                       {"groups":[{"name","nodes":[...]}]}
  --timeout DURATION   give up when the server has not answered (default 5m)
  --config, --base_url, --jwt_token   see flight-power help
`

// listedNode and listedGroup are the elements of list's --json output.
type listedNode struct {
	Name     string `json:"name"`
	Platform string `json:"platform"`
}

type listedGroup struct {
	Name  string   `json:"name"`
	Nodes []string `json:"nodes"`
}

// runList shows the nodes, or the groups, the server knows.
func runList(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("list")
	sf := addServerFlags(fs)
	var groups, verbose bool
	fs.BoolVar(&groups, "groups", false, "list groups")
	fs.BoolVar(&groups, "g", false, "short for --groups")
	fs.BoolVar(&verbose, "verbose", false, "show group members")
	fs.BoolVar(&verbose, "v", false, "short for --verbose")
	rest, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, listUsage)
		return nil
	}
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErrorf("list takes no arguments, got %q: for the power state of nodes run flight-power status NODES", rest)
	}
	if verbose && !groups {
		return usageErrorf("list: --verbose shows group members: use it with --groups")
	}
	cfg, err := loadConfig(fs, e.getenv)
	if err != nil {
		return err
	}
	c := newClient(cfg)
	if groups {
		return listGroups(ctx, e, c, sf.json, verbose)
	}
	a, err := c.do(ctx, http.MethodGet, "/nodes", "")
	if err != nil {
		return err
	}
	var doc handler.Document[handler.NodeAttributes]
	if err := c.decode(a, &doc); err != nil {
		return err
	}
	nodes := make([]listedNode, 0, len(doc.Data))
	rows := make([][]string, 0, len(doc.Data))
	for _, r := range doc.Data {
		n := listedNode{Name: r.Attributes.Name, Platform: r.Attributes.Platform}
		if n.Name == "" {
			n.Name = r.ID
		}
		nodes = append(nodes, n)
		rows = append(rows, []string{n.Name, n.Platform})
	}
	if sf.json {
		return writeJSON(e.stdout, struct {
			Nodes []listedNode `json:"nodes"`
		}{nodes})
	}
	writeTable(e.stdout, rows)
	return nil
}

func listGroups(ctx context.Context, e env, c *client, asJSON, verbose bool) error {
	a, err := c.do(ctx, http.MethodGet, "/groups", "")
	if err != nil {
		return err
	}
	var doc handler.Document[handler.GroupAttributes]
	if err := c.decode(a, &doc); err != nil {
		return err
	}
	groups := make([]listedGroup, 0, len(doc.Data))
	rows := make([][]string, 0, len(doc.Data))
	for _, r := range doc.Data {
		g := listedGroup{Name: r.Attributes.Name, Nodes: r.Attributes.Nodes}
		if g.Name == "" {
			g.Name = r.ID
		}
		if g.Nodes == nil {
			g.Nodes = []string{}
		}
		groups = append(groups, g)
		row := []string{g.Name}
		if verbose {
			members := handler.CompressHostlist(g.Nodes)
			if members == "" {
				members = "(no nodes)"
			}
			row = append(row, members)
		}
		rows = append(rows, row)
	}
	if asJSON {
		return writeJSON(e.stdout, struct {
			Groups []listedGroup `json:"groups"`
		}{groups})
	}
	writeTable(e.stdout, rows)
	return nil
}

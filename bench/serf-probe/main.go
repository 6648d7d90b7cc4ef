// serf-probe: Debian's serf agent (the same packages, serf 0.9.4 and memberlist
// 0.2.2) with the probe interval and probe timeout set, which the shipped `serf
// agent` cannot do (its -profile flag only picks memberlist's lan, wan or local
// presets, all probing once a second). Everything else is what `serf agent
// -profile=lan` sets up (cmd/serf/command/agent/command.go, setupAgent and
// startAgent): the lan memberlist preset, the agent's coalesce periods, the RPC
// listener that `serf members` talks to, and info-level logs on stdout, where
// the benchmark reads `EventMemberFailed`. Built by bench/setup.sh:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o <dir>/serf-probe bench/serf-probe/main.go
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/logutils"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/cmd/serf/command/agent"
	"github.com/hashicorp/serf/serf"
)

func main() {
	node := flag.String("node", "", "node name")
	bind := flag.String("bind", "127.0.0.1:7946", "gossip address (UDP and TCP)")
	rpcAddr := flag.String("rpc-addr", "127.0.0.1:7373", "RPC address")
	join := flag.String("join", "", "address of a member to join")
	probeInterval := flag.Duration("probe-interval", time.Second, "memberlist ProbeInterval")
	probeTimeout := flag.Duration("probe-timeout", 500*time.Millisecond, "memberlist ProbeTimeout")
	flag.Parse()
	if *node == "" || *probeTimeout >= *probeInterval {
		fmt.Fprintln(os.Stderr, "serf-probe: -node is required and -probe-timeout must be shorter than -probe-interval")
		os.Exit(2)
	}
	host, portText, err := net.SplitHostPort(*bind)
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil {
		fmt.Fprintf(os.Stderr, "serf-probe: bad -bind %q\n", *bind)
		os.Exit(2)
	}

	logOutput := &logutils.LevelFilter{Levels: []logutils.LogLevel{"TRACE", "DEBUG", "INFO", "WARN", "ERR"}, MinLevel: "INFO", Writer: os.Stdout}

	agentConfig := agent.DefaultConfig()
	agentConfig.NodeName = *node
	agentConfig.BindAddr = *bind
	agentConfig.RPCAddr = *rpcAddr

	serfConfig := serf.DefaultConfig()
	serfConfig.MemberlistConfig = memberlist.DefaultLANConfig()
	serfConfig.MemberlistConfig.ProbeInterval = *probeInterval
	serfConfig.MemberlistConfig.ProbeTimeout = *probeTimeout
	serfConfig.MemberlistConfig.BindAddr = host
	serfConfig.MemberlistConfig.BindPort = port
	serfConfig.MemberlistConfig.AdvertiseAddr = host
	serfConfig.MemberlistConfig.AdvertisePort = port
	serfConfig.NodeName = *node
	serfConfig.ProtocolVersion = uint8(agentConfig.Protocol)
	serfConfig.CoalescePeriod = 3 * time.Second
	serfConfig.QuiescentPeriod = time.Second
	serfConfig.UserCoalescePeriod = 3 * time.Second
	serfConfig.UserQuiescentPeriod = time.Second
	serfConfig.QueryResponseSizeLimit = agentConfig.QueryResponseSizeLimit
	serfConfig.QuerySizeLimit = agentConfig.QuerySizeLimit
	serfConfig.UserEventSizeLimit = agentConfig.UserEventSizeLimit
	serfConfig.EnableNameConflictResolution = !agentConfig.DisableNameResolution
	if agentConfig.BroadcastTimeout != 0 {
		serfConfig.BroadcastTimeout = agentConfig.BroadcastTimeout
	}

	a, err := agent.Create(agentConfig, serfConfig, logOutput)
	if err == nil {
		err = a.Start()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "serf-probe: cannot start the agent: %v\n", err)
		os.Exit(1)
	}
	listener, err := net.Listen("tcp", *rpcAddr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "serf-probe: cannot listen on %s: %v\n", *rpcAddr, err)
		os.Exit(1)
	}
	agent.NewAgentIPC(a, "", listener, logOutput, agent.NewLogWriter(512))
	fmt.Fprintf(os.Stdout, "serf-probe: %s on %s, probe interval %v, probe timeout %v\n", *node, *bind, *probeInterval, *probeTimeout)
	if *join != "" {
		for {
			if _, err := a.Join([]string{*join}, false); err == nil {
				break
			}
			time.Sleep(time.Second)
		}
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	a.Shutdown()
}

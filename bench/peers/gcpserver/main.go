// Command gcpserver serves a snapshot exported by bench/gcp.py over ADS with go-control-plane, so the
// benchmarks can compare our xDS server with the reference Go implementation on identical resources.
//
// It listens on 127.0.0.1 at a port of its own and prints "listening <port>". On stdin, "load <path>" decodes
// a snapshot file ({"versions": {type_url: version}, "resources": {type_url: [base64 protobuf]}}) and
// answers "loaded"; "set" then serves it to --node and answers "set" (either may answer "error <reason>"),
// so the caller times only the push, not our file format. Each type keeps the version we computed, so, like
// our server, go-control-plane resends only the types whose content changed. Every ACK (SotW or Delta) is printed as
// "ack <node> <type_url> <version>" so the caller can time push to ACK the same way for both servers.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The resource kinds a snapshot may hold; the imports above register their Go types.
var (
	_ = clusterv3.Cluster{}
	_ = endpointv3.ClusterLoadAssignment{}
	_ = listenerv3.Listener{}
	_ = routev3.RouteConfiguration{}
)

type snapshotFile struct {
	Versions  map[string]string   `json:"versions"`
	Resources map[string][]string `json:"resources"`
}

// acks prints one line per ACK. Envoy names its node on a stream's first request only, so the node is kept
// by stream; delta ACKs carry no version, so the version of each response is kept by nonce.
type acks struct {
	mu     sync.Mutex
	out    *bufio.Writer
	nodes  map[int64]string
	nonces map[string]string
}

func (a *acks) node(stream int64, named string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if named != "" {
		a.nodes[stream] = named
	}
	return a.nodes[stream]
}

func (a *acks) print(node, typeURL, version string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fmt.Fprintf(a.out, "ack %s %s %s\n", node, typeURL, version)
	a.out.Flush()
}

func (a *acks) callbacks() serverv3.CallbackFuncs {
	return serverv3.CallbackFuncs{
		StreamRequestFunc: func(stream int64, req *discoveryv3.DiscoveryRequest) error {
			node := a.node(stream, req.GetNode().GetId())
			if req.GetResponseNonce() != "" && req.GetErrorDetail() == nil {
				a.print(node, req.GetTypeUrl(), req.GetVersionInfo())
			}
			return nil
		},
		StreamDeltaResponseFunc: func(_ int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			a.mu.Lock()
			a.nonces[resp.GetNonce()] = resp.GetSystemVersionInfo()
			a.mu.Unlock()
		},
		StreamDeltaRequestFunc: func(stream int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			node := a.node(stream, req.GetNode().GetId())
			if req.GetResponseNonce() == "" || req.GetErrorDetail() != nil {
				return nil
			}
			a.mu.Lock()
			version, known := a.nonces[req.GetResponseNonce()]
			delete(a.nonces, req.GetResponseNonce())
			a.mu.Unlock()
			if known {
				a.print(node, req.GetTypeUrl(), version)
			}
			return nil
		},
	}
}

func load(path string) (*cachev3.Snapshot, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var file snapshotFile
	if err := json.Unmarshal(raw, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	snapshot := &cachev3.Snapshot{}
	for typeURL, encoded := range file.Resources {
		messageType, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
		if err != nil {
			return nil, fmt.Errorf("%s: type %s: %w", path, typeURL, err)
		}
		items := make([]types.Resource, 0, len(encoded))
		for _, item := range encoded {
			message, err := decode(messageType, item)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, typeURL, err)
			}
			items = append(items, message)
		}
		snapshot.Resources[cachev3.GetResponseType(typeURL)] = cachev3.NewResources(file.Versions[typeURL], items)
	}
	return snapshot, snapshot.Consistent()
}

func decode(messageType protoreflect.MessageType, item string) (types.Resource, error) {
	data, err := base64.StdEncoding.DecodeString(item)
	if err != nil {
		return nil, err
	}
	message := messageType.New().Interface()
	if err := proto.Unmarshal(data, message); err != nil {
		return nil, err
	}
	return message, nil
}

func main() {
	node := flag.String("node", "", "the node id whose snapshot stdin sets")
	flag.Parse()
	ctx := context.Background()
	out := bufio.NewWriter(os.Stdout)
	printer := &acks{out: out, nodes: map[int64]string{}, nonces: map[string]string{}}
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	grpcServer := grpc.NewServer(grpc.MaxConcurrentStreams(1000000))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(grpcServer, serverv3.NewServer(ctx, cache, printer.callbacks()))
	go func() {
		if err := grpcServer.Serve(listener); err != nil {
			log.Fatal(err)
		}
	}()
	printer.mu.Lock()
	fmt.Fprintf(out, "listening %d\n", listener.Addr().(*net.TCPAddr).Port)
	out.Flush()
	printer.mu.Unlock()
	var loaded *cachev3.Snapshot
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		command, argument, _ := strings.Cut(lines.Text(), " ")
		var err error
		switch {
		case command == "load":
			loaded, err = load(argument)
		case command == "set" && loaded != nil:
			err = cache.SetSnapshot(ctx, *node, loaded)
		default:
			err = fmt.Errorf("unknown command %q (or set before load)", command)
		}
		printer.mu.Lock()
		if err != nil {
			fmt.Fprintf(out, "error %s\n", err)
		} else {
			fmt.Fprintln(out, map[string]string{"load": "loaded", "set": "set"}[command])
		}
		out.Flush()
		printer.mu.Unlock()
	}
}

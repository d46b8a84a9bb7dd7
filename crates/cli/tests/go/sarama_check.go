// sarama_check drives a krust node with Sarama, the Go client (its own protocol code):
// topics made by its ClusterAdmin, an idempotent producer with snappy, a partition
// consumer, and a consumer group whose commits the admin reads back.
//
// Usage: sarama_check <bootstrap> [oauthbearer <token>]. With a token it authenticates
// with SASL/OAUTHBEARER (Sarama's own implementation of RFC 7628) on a SASL_PLAINTEXT
// listener. Prints "sarama ...: ok" lines; exits non-zero on the first failed check.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

const (
	topic   = "sarama"
	records = 90
	group   = "sarama-g"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_1_0_0
	c.ClientID = "sarama-check"
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Compression = sarama.CompressionSnappy
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
	// With a retention time this Sarama commits with OffsetCommit v2; without one it sends
	// v1, which Kafka 4 (and krust) no longer serve.
	c.Consumer.Offsets.Retention = 24 * time.Hour
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	return c
}

type fixedToken string

func (t fixedToken) Token() (*sarama.AccessToken, error) {
	return &sarama.AccessToken{Token: string(t), Extensions: map[string]string{"traceId": "sarama"}}, nil
}

type handler struct {
	mu   sync.Mutex
	seen map[string]bool
	done chan struct{}
	once sync.Once
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		if len(m.Headers) != 1 || string(m.Headers[0].Key) != "h" {
			fail("record %s/%d/%d has headers %v", m.Topic, m.Partition, m.Offset, m.Headers)
		}
		h.mu.Lock()
		h.seen[string(m.Value)] = true
		n := len(h.seen)
		h.mu.Unlock()
		s.MarkMessage(m, "")
		if n == records {
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

func main() {
	brokers := []string{os.Args[1]}
	cfg := config()
	if len(os.Args) == 4 && os.Args[2] == "oauthbearer" {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Mechanism = sarama.SASLTypeOAuth
		cfg.Net.SASL.Handshake = true
		cfg.Net.SASL.TokenProvider = fixedToken(os.Args[3])
	}

	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		fail("admin: %v", err)
	}
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false)
	if err != nil {
		fail("create topic: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		meta, err := admin.DescribeTopics([]string{topic})
		if err == nil && len(meta) == 1 && meta[0].Err == sarama.ErrNoError && len(meta[0].Partitions) == 3 {
			break
		}
		if time.Now().After(deadline) {
			fail("topic metadata: %v %v", meta, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Println("sarama admin: ok")

	producer, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		fail("producer: %v", err)
	}
	counts := map[int32]int64{}
	for i := 0; i < records; i++ {
		p, _, err := producer.SendMessage(&sarama.ProducerMessage{
			Topic:   topic,
			Key:     sarama.StringEncoder(fmt.Sprintf("k%d", i%7)),
			Value:   sarama.StringEncoder(fmt.Sprintf("v%d", i)),
			Headers: []sarama.RecordHeader{{Key: []byte("h"), Value: []byte("x")}},
		})
		if err != nil {
			fail("send %d: %v", i, err)
		}
		counts[p]++
	}
	producer.Close()
	fmt.Println("sarama producer: ok")

	consumer, err := sarama.NewConsumer(brokers, cfg)
	if err != nil {
		fail("consumer: %v", err)
	}
	for p := int32(0); p < 3; p++ {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			fail("consume partition %d: %v", p, err)
		}
		for got := int64(0); got < counts[p]; got++ {
			select {
			case m := <-pc.Messages():
				if m.Offset != got {
					fail("partition %d: offset %d, wanted %d", p, m.Offset, got)
				}
			case <-time.After(20 * time.Second):
				fail("partition %d: %d of %d records", p, got, counts[p])
			}
		}
		pc.Close()
	}
	consumer.Close()
	fmt.Println("sarama partition consumer: ok")

	cg, err := sarama.NewConsumerGroup(brokers, group, cfg)
	if err != nil {
		fail("consumer group: %v", err)
	}
	h := &handler{seen: map[string]bool{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
				fail("consume: %v", err)
			}
		}
	}()
	select {
	case <-h.done:
	case <-time.After(60 * time.Second):
		fail("the group read %d of %d records", len(h.seen), records)
	}
	// Committed offsets reach the end of every partition.
	deadline = time.Now().Add(30 * time.Second)
	for {
		resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
		ok := err == nil
		if ok {
			for p := int32(0); p < 3; p++ {
				b := resp.GetBlock(topic, p)
				if b == nil || b.Offset != counts[p] {
					ok = false
				}
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			got := map[int32]string{}
			if resp != nil {
				for p := int32(0); p < 3; p++ {
					if b := resp.GetBlock(topic, p); b != nil {
						got[p] = fmt.Sprintf("%d (%v)", b.Offset, b.Err)
					}
				}
			}
			fail("committed offsets %v, wanted %v: %v", got, counts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	cg.Close()
	fmt.Println("sarama consumer group: ok")
	admin.Close()
}

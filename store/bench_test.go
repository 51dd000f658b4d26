package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/openflighthpc/flight-power/store"
)

// BenchmarkRecordResult measures single-result writes, each its own
// committed transaction, as the handler makes them; rows/s is the figure to
// quote.
func BenchmarkRecordResult(b *testing.B) {
	for _, mode := range []string{store.JournalWAL, store.JournalDelete} {
		b.Run(mode, func(b *testing.B) {
			s, _ := openStore(b, store.Options{JournalMode: mode})
			ctx := context.Background()
			rec := newRequest("r-bench")
			if err := s.BeginRequest(ctx, rec); err != nil {
				b.Fatal(err)
			}
			res := newResult("node001")
			nodes := make([]string, 1000)
			for i := range nodes {
				nodes[i] = fmt.Sprintf("node%03d", i)
			}
			i := 0
			for b.Loop() {
				res.Node = nodes[i%len(nodes)]
				i++
				if err := s.RecordResult(ctx, rec.ID, res); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
	b.Run("WAL/parallel", func(b *testing.B) {
		s, _ := openStore(b, store.Options{})
		ctx := context.Background()
		rec := newRequest("r-bench")
		if err := s.BeginRequest(ctx, rec); err != nil {
			b.Fatal(err)
		}
		b.RunParallel(func(pb *testing.PB) {
			res := newResult("node001")
			for pb.Next() {
				if err := s.RecordResult(ctx, rec.ID, res); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

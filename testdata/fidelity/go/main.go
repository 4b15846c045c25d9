// Command bootstrap is lambda-perf's Go function (maxday/lambda-perf): a
// handler that answers {"statusCode":200}, started with aws-lambda-go. It is
// built as lambda-perf builds it (CGO_ENABLED=0, -tags lambda.norpc,
// -ldflags "-w -s") so initprof's model can be held against the Init
// Durations lambda-perf publishes for it (LAMBDA-FIDELITY.md).
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
)

type response struct {
	StatusCode int `json:"statusCode"`
}

func handler(ctx context.Context) (response, error) {
	return response{StatusCode: 200}, nil
}

func main() {
	lambda.Start(handler)
}

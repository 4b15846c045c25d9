module example.com/lambdaperf-go

go 1.26

require github.com/aws/aws-lambda-go v1.54.0

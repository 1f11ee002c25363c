// A Go user's module: cdk8s, cdk8s-plus-28 and constructs from the Go module proxy at the
// versions the package is built against, and the package from `npx projen package:go`.
module example.com/ferretdb-app

go 1.25

require (
	github.com/aws/constructs-go/constructs/v10 v10.8.1
	github.com/aws/jsii-runtime-go v1.140.0
	github.com/cdk8s-ferretdb/cdk8s-ferretdb-go/cdk8sferretdb v0.0.0
	github.com/cdk8s-team/cdk8s-core-go/cdk8s/v2 v2.70.106
	github.com/cdk8s-team/cdk8s-plus-go/cdk8splus28/v2 v2.5.6
)

replace github.com/cdk8s-ferretdb/cdk8s-ferretdb-go/cdk8sferretdb => ../../../dist/go/cdk8sferretdb

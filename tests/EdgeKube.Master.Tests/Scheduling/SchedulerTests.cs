using EdgeKube.Master.Scheduling;
using k8s.Models;

namespace EdgeKube.Master.Tests.Scheduling;

public class SchedulerTests
{
    private const string NotReadyKey = "node.kubernetes.io/not-ready";
    private const string Gpio = "edgekube.io/gpio";

    // ---- no nodes, result shape ----

    [Fact]
    public void NoNodes_ReportsKubeSchedulersNoNodesError()
    {
        var result = Scheduler.Schedule(Pod(), [], []);

        Assert.Equal(new ScheduleResult(null, "no nodes available to schedule pods"), result);
    }

    [Fact]
    public void FittingNode_ReturnsItsNameAndNoMessage()
    {
        var result = Scheduler.Schedule(Pod(cpu: "1"), [Node("pi-1")], []);

        Assert.Equal(new ScheduleResult("pi-1", null), result);
    }

    [Fact]
    public void PodWithoutSpecOrContainers_IsScheduled()
    {
        Assert.Equal("pi-1", Scheduler.Schedule(new V1Pod(), [Node("pi-1")], []).NodeName);
        Assert.Equal("pi-1", Scheduler.Schedule(new V1Pod { Spec = new V1PodSpec() }, [Node("pi-1")], []).NodeName);
    }

    // ---- percentageOfNodesToScore (large clusters) ----

    [Theory]
    [InlineData(50, 50)]
    [InlineData(100, 100)]
    [InlineData(150, 100)]
    [InlineData(1000, 420)]
    [InlineData(5000, 500)]
    [InlineData(10000, 500)]
    public void FeasibleNodesToFind_FollowsKubeSchedulersAdaptivePercentage(int nodes, int expected)
    {
        // 50 % less 1 % per 125 nodes, at least 5 %, at least 100 nodes; every node below 100.
        Assert.Equal(expected, Scheduler.NumFeasibleNodesToFind(nodes));
    }

    [Fact]
    public void LargeCluster_StopsOnceEnoughNodesFit_AndTheNextPodStartsWhereTheLastStopped()
    {
        var snapshot = Scheduler.Snapshot([.. Enumerable.Range(0, 1000).Select(i => Node($"n{i:D4}"))], []);
        var start = 0;

        var first = Scheduler.Schedule(Pod(), snapshot, ref start);
        Assert.Equal(420, start);
        Assert.InRange(first.NodeName!, "n0000", "n0419");

        var second = Scheduler.Schedule(Pod(), snapshot, ref start);
        Assert.Equal(840, start);
        Assert.InRange(second.NodeName!, "n0420", "n0839");

        // Wraps around the end of the list.
        var third = Scheduler.Schedule(Pod(), snapshot, ref start);
        Assert.Equal(260, start);
        Assert.NotNull(third.NodeName);
    }

    [Fact]
    public void LargeCluster_WhereNothingFits_StillLooksAtAndReportsEveryNode()
    {
        var snapshot = Scheduler.Snapshot([.. Enumerable.Range(0, 1000).Select(i => Cordon(Node($"n{i:D4}")))], []);
        var start = 500;

        var result = Scheduler.Schedule(Pod(), snapshot, ref start);

        Assert.Null(result.NodeName);
        Assert.Equal("0/1000 nodes are available: 1000 node(s) were unschedulable.", result.Message);
    }

    // ---- NodeUnschedulable ----

    [Fact]
    public void CordonedNode_IsUnschedulable()
    {
        var result = Scheduler.Schedule(Pod(), [Cordon(Node("pi-1"))], []);

        Assert.Null(result.NodeName);
        Assert.Equal("0/1 nodes are available: 1 node(s) were unschedulable.", result.Message);
    }

    [Fact]
    public void CordonedNode_IsSkippedForAnUncordonedOne()
    {
        var result = Scheduler.Schedule(Pod(), [Cordon(Node("a")), Node("b")], []);

        Assert.Equal("b", result.NodeName);
    }

    [Theory]
    [InlineData("node.kubernetes.io/unschedulable", "Exists", null, "NoSchedule", true)]
    [InlineData("node.kubernetes.io/unschedulable", "Exists", null, null, true)]
    [InlineData(null, "Exists", null, null, true)]
    [InlineData(null, "Exists", null, "NoSchedule", true)]
    [InlineData("node.kubernetes.io/unschedulable", "Equal", "", "NoSchedule", true)]
    [InlineData("node.kubernetes.io/unschedulable", "Exists", null, "NoExecute", false)]
    [InlineData("node.kubernetes.io/unschedulable", "Equal", "true", "NoSchedule", false)]
    [InlineData("other", "Exists", null, null, false)]
    public void CordonedNode_TakesPodsThatTolerateTheUnschedulableTaint(string? key, string op, string? value, string? effect, bool scheduled)
    {
        var pod = Pod(tolerations: [Toleration(key, op, value, effect)]);

        var result = Scheduler.Schedule(pod, [Cordon(Node("pi-1"))], []);

        Assert.Equal(scheduled ? "pi-1" : null, result.NodeName);
    }

    // ---- TaintToleration filter ----

    [Fact]
    public void UntoleratedNoScheduleTaint_RejectsWithKeyAndValue()
    {
        var result = Scheduler.Schedule(Pod(), [Node("pi-1", taints: [Taint("dedicated", "gpio", "NoSchedule")])], []);

        Assert.Equal("0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpio}.", result.Message);
    }

    [Fact]
    public void NotReadyTaintWithoutValue_UsesKube127Wording()
    {
        var result = Scheduler.Schedule(Pod(), [Node("pi-1", taints: [Taint(NotReadyKey, null, "NoExecute")])], []);

        Assert.Equal("0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.", result.Message);
    }

    [Fact]
    public void NoExecuteTaint_RejectsLikeNoSchedule()
    {
        var result = Scheduler.Schedule(Pod(), [Node("pi-1", taints: [Taint("k", "v", "NoExecute")])], []);

        Assert.Null(result.NodeName);
    }

    [Fact]
    public void PreferNoScheduleTaint_DoesNotFilter()
    {
        var result = Scheduler.Schedule(Pod(), [Node("pi-1", taints: [Taint("k", "v", "PreferNoSchedule")])], []);

        Assert.Equal("pi-1", result.NodeName);
    }

    [Fact]
    public void NodeNotReady_WithoutTaints_IsStillSchedulable()
    {
        // Kubernetes keeps pods off NotReady nodes only through the taints the node lifecycle controller adds.
        var node = Node("pi-1");
        node.Status.Conditions = [new V1NodeCondition { Type = "Ready", Status = "False" }];

        Assert.Equal("pi-1", Scheduler.Schedule(Pod(), [node], []).NodeName);
    }

    [Fact]
    public void FirstUntoleratedTaint_IsTheOneReported()
    {
        var node = Node("pi-1", taints:
        [
            Taint("tolerated", "x", "NoSchedule"),
            Taint("soft", "x", "PreferNoSchedule"),
            Taint("second", "y", "NoExecute"),
            Taint("third", "z", "NoSchedule"),
        ]);
        var pod = Pod(tolerations: [Toleration("tolerated", "Exists", null, "NoSchedule")]);

        var result = Scheduler.Schedule(pod, [node], []);

        Assert.Equal("0/1 nodes are available: 1 node(s) had untolerated taint {second: y}.", result.Message);
    }

    [Fact]
    public void AllHardTaintsTolerated_Schedules()
    {
        var node = Node("pi-1", taints: [Taint("a", "1", "NoSchedule"), Taint(NotReadyKey, null, "NoExecute")]);
        var pod = Pod(tolerations: [Toleration("a", "Equal", "1", "NoSchedule"), Toleration(NotReadyKey, "Exists", null, "NoExecute")]);

        Assert.Equal("pi-1", Scheduler.Schedule(pod, [node], []).NodeName);
    }

    [Theory]
    // key, operator, value, effect of the toleration; the taint is {dedicated=gpio:NoSchedule}
    [InlineData("dedicated", "Equal", "gpio", "NoSchedule", true)]
    [InlineData("dedicated", null, "gpio", "NoSchedule", true)]
    [InlineData("dedicated", "", "gpio", "NoSchedule", true)]
    [InlineData("dedicated", "Equal", "other", "NoSchedule", false)]
    [InlineData("dedicated", "Equal", null, "NoSchedule", false)]
    [InlineData("dedicated", "Exists", null, "NoSchedule", true)]
    [InlineData("dedicated", "Exists", null, null, true)]
    [InlineData("dedicated", "Exists", null, "", true)]
    [InlineData("dedicated", "Exists", null, "NoExecute", false)]
    [InlineData("dedicated", "Exists", null, "PreferNoSchedule", false)]
    [InlineData("other", "Exists", null, "NoSchedule", false)]
    [InlineData(null, "Exists", null, null, true)]
    [InlineData("", "Exists", null, "NoSchedule", true)]
    [InlineData(null, "Exists", null, "NoExecute", false)]
    [InlineData("dedicated", "Gt", "gpio", "NoSchedule", false)]
    public void TolerationMatching_FollowsKubernetesRules(string? key, string? op, string? value, string? effect, bool tolerated)
    {
        var toleration = Toleration(key, op, value, effect);

        Assert.Equal(tolerated, Tolerations.Tolerates(toleration, "dedicated", "gpio", "NoSchedule"));
        var result = Scheduler.Schedule(Pod(tolerations: [toleration]), [Node("pi-1", taints: [Taint("dedicated", "gpio", "NoSchedule")])], []);
        Assert.Equal(tolerated ? "pi-1" : null, result.NodeName);
    }

    [Fact]
    public void EmptyKeyExistsToleration_ToleratesEveryTaint()
    {
        var node = Node("pi-1", taints:
        [
            Taint("a", "1", "NoSchedule"),
            Taint(NotReadyKey, null, "NoExecute"),
            Taint("node.kubernetes.io/unreachable", null, "NoExecute"),
        ]);

        Assert.Equal("pi-1", Scheduler.Schedule(Pod(tolerations: [Toleration(null, "Exists", null, null)]), [Cordon(node)], []).NodeName);
    }

    // ---- NodeAffinity: nodeSelector ----

    [Fact]
    public void NodeSelector_PicksTheLabelledNode()
    {
        var nodes = new[] { Node("a"), Node("b", labels: new() { ["sensor"] = "bme280" }), Node("c", labels: new() { ["sensor"] = "dht22" }) };
        var pod = Pod(nodeSelector: new() { ["sensor"] = "bme280" });

        Assert.Equal("b", Scheduler.Schedule(pod, nodes, []).NodeName);
    }

    [Fact]
    public void NodeSelector_AllLabelsMustMatch()
    {
        var nodes = new[]
        {
            Node("a", labels: new() { ["sensor"] = "bme280" }),
            Node("b", labels: new() { ["sensor"] = "bme280", ["zone"] = "shed" }),
        };
        var pod = Pod(nodeSelector: new() { ["sensor"] = "bme280", ["zone"] = "shed" });

        Assert.Equal("b", Scheduler.Schedule(pod, nodes, []).NodeName);
    }

    [Fact]
    public void NodeSelector_NoMatch_ReportsAffinitySelectorReason()
    {
        var pod = Pod(nodeSelector: new() { ["sensor"] = "bme280" });

        var result = Scheduler.Schedule(pod, [Node("a"), Node("b", labels: new() { ["sensor"] = "other" })], []);

        Assert.Equal("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.", result.Message);
    }

    // ---- NodeAffinity: required terms ----

    [Theory]
    [InlineData("In", "zone", "shed,house", true)]
    [InlineData("In", "zone", "house", false)]
    [InlineData("In", "missing", "x", false)]
    [InlineData("In", "zone", "", false)]
    [InlineData("NotIn", "zone", "house", true)]
    [InlineData("NotIn", "zone", "shed", false)]
    [InlineData("NotIn", "missing", "x", true)]
    [InlineData("Exists", "zone", "", true)]
    [InlineData("Exists", "missing", "", false)]
    [InlineData("DoesNotExist", "missing", "", true)]
    [InlineData("DoesNotExist", "zone", "", false)]
    [InlineData("Gt", "gpio-pins", "20", true)]
    [InlineData("Gt", "gpio-pins", "26", false)]
    [InlineData("Gt", "gpio-pins", "-5", true)]
    [InlineData("Gt", "gpio-pins", "+25", true)]
    [InlineData("Lt", "gpio-pins", "40", true)]
    [InlineData("Lt", "gpio-pins", "26", false)]
    [InlineData("Lt", "gpio-pins", "-1", false)]
    [InlineData("Gt", "zone", "1", false)]
    [InlineData("Gt", "gpio-pins", "x", false)]
    [InlineData("Gt", "gpio-pins", "1,2", false)]
    [InlineData("Gt", "gpio-pins", "", false)]
    [InlineData("Gt", "missing", "1", false)]
    [InlineData("Lt", "missing", "100", false)]
    [InlineData("Like", "zone", "shed", false)]
    public void RequiredAffinity_Operators(string op, string key, string values, bool matches)
    {
        var node = Node("pi-1", labels: new() { ["zone"] = "shed", ["gpio-pins"] = "26" });
        var pod = Pod(required: [Term(expressions: [Requirement(key, op, Split(values))])]);

        var result = Scheduler.Schedule(pod, [node], []);

        Assert.Equal(matches ? "pi-1" : null, result.NodeName);
        if (!matches)
        {
            Assert.Equal("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.", result.Message);
        }
    }

    [Fact]
    public void RequiredAffinity_TermsAreOred()
    {
        var nodes = new[] { Node("a", labels: new() { ["zone"] = "shed" }), Node("b", labels: new() { ["zone"] = "house" }), Node("c") };
        var pod = Pod(required:
        [
            Term(expressions: [Requirement("zone", "In", "garage")]),
            Term(expressions: [Requirement("zone", "In", "house")]),
        ]);

        Assert.Equal("b", Scheduler.Schedule(pod, nodes, []).NodeName);
    }

    [Fact]
    public void RequiredAffinity_ExpressionsInATermAreAnded()
    {
        var nodes = new[]
        {
            Node("a", labels: new() { ["zone"] = "shed", ["arch"] = "arm" }),
            Node("b", labels: new() { ["zone"] = "shed", ["arch"] = "arm64" }),
        };
        var pod = Pod(required: [Term(expressions: [Requirement("zone", "In", "shed"), Requirement("arch", "In", "arm64")])]);

        Assert.Equal("b", Scheduler.Schedule(pod, nodes, []).NodeName);
    }

    [Fact]
    public void RequiredAffinity_EmptyTermOrNoTerms_MatchNothing()
    {
        Assert.Null(Scheduler.Schedule(Pod(required: [new V1NodeSelectorTerm()]), [Node("a")], []).NodeName);
        Assert.Null(Scheduler.Schedule(Pod(required: []), [Node("a")], []).NodeName);
    }

    [Fact]
    public void NodeSelectorAndRequiredAffinity_MustBothMatch()
    {
        var nodes = new[]
        {
            Node("a", labels: new() { ["sensor"] = "bme280" }),
            Node("b", labels: new() { ["zone"] = "shed" }),
            Node("c", labels: new() { ["sensor"] = "bme280", ["zone"] = "shed" }),
        };
        var pod = Pod(nodeSelector: new() { ["sensor"] = "bme280" }, required: [Term(expressions: [Requirement("zone", "In", "shed")])]);

        Assert.Equal("c", Scheduler.Schedule(pod, nodes, []).NodeName);
        var result = Scheduler.Schedule(pod, nodes[..2], []);
        Assert.Equal("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.", result.Message);
    }

    // ---- NodeAffinity: matchFields metadata.name ----

    [Fact]
    public void MatchFieldsNameIn_PicksThatNode()
    {
        var pod = Pod(required: [Term(fields: [Requirement("metadata.name", "In", "c")])]);

        Assert.Equal("c", Scheduler.Schedule(pod, [Node("a"), Node("b"), Node("c")], []).NodeName);
    }

    [Fact]
    public void MatchFieldsNameIn_OtherNodesDidNotSatisfyThePreFilter()
    {
        // As for a DaemonSet pod whose node is full.
        var nodes = new[] { Node("a"), Node("b", pods: "1"), Node("c") };
        var assigned = new[] { Bound(Pod("x"), "b") };
        var pod = Pod(required: [Term(fields: [Requirement("metadata.name", "In", "b")])]);

        var result = Scheduler.Schedule(pod, nodes, assigned);

        Assert.Equal("0/3 nodes are available: 1 Too many pods, 2 node(s) didn't satisfy plugin(s) [NodeAffinity].", result.Message);
    }

    [Fact]
    public void MatchFieldsNameIn_UnknownNode()
    {
        var pod = Pod(required: [Term(fields: [Requirement("metadata.name", "In", "gone")])]);

        var result = Scheduler.Schedule(pod, [Node("a"), Node("b")], []);

        Assert.Equal("0/2 nodes are available: 2 node(s) didn't satisfy plugin(s) [NodeAffinity].", result.Message);
    }

    [Fact]
    public void MatchFieldsNameIn_ConflictingRequirements()
    {
        var pod = Pod(required: [Term(fields: [Requirement("metadata.name", "In", "a"), Requirement("metadata.name", "In", "b")])]);

        var result = Scheduler.Schedule(pod, [Node("a"), Node("b")], []);

        Assert.Equal(new ScheduleResult(null, "0/2 nodes are available: pod affinity terms conflict."), result);
    }

    [Fact]
    public void MatchFieldsNameIn_TermsUnion()
    {
        var pod = Pod(required:
        [
            Term(fields: [Requirement("metadata.name", "In", "c")]),
            Term(fields: [Requirement("metadata.name", "In", "b")]),
        ]);

        var result = Scheduler.Schedule(pod, [Node("a"), Node("b"), Node("c")], []);

        Assert.Equal("b", result.NodeName);
    }

    [Fact]
    public void MatchFieldsNameNotIn_ExcludesThatNode()
    {
        var pod = Pod(required: [Term(fields: [Requirement("metadata.name", "NotIn", "a")])]);

        Assert.Equal("b", Scheduler.Schedule(pod, [Node("a"), Node("b")], []).NodeName);
        Assert.Equal(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
            Scheduler.Schedule(pod, [Node("a")], []).Message);
    }

    [Fact]
    public void MatchFieldsAndExpressions_InOneTermAreAnded()
    {
        var nodes = new[] { Node("a", labels: new() { ["zone"] = "shed" }), Node("b") };
        var pod = Pod(required: [Term(expressions: [Requirement("zone", "Exists")], fields: [Requirement("metadata.name", "In", "b")])]);

        var result = Scheduler.Schedule(pod, nodes, []);

        Assert.Equal("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) didn't satisfy plugin(s) [NodeAffinity].", result.Message);
    }

    [Fact]
    public void MatchFields_WithATermWithoutNamePin_DoesNotRestrictNodes()
    {
        var nodes = new[] { Node("a", labels: new() { ["zone"] = "shed" }), Node("b"), Node("c") };
        var pod = Pod(required:
        [
            Term(fields: [Requirement("metadata.name", "In", "b")]),
            Term(expressions: [Requirement("zone", "In", "shed")]),
        ]);

        Assert.Equal("a", Scheduler.Schedule(pod, nodes, []).NodeName);
        var failed = Scheduler.Schedule(pod, [Node("c")], []);
        Assert.Equal("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.", failed.Message);
    }

    [Theory]
    [InlineData("metadata.name", "In", "a,b", false)] // field selectors take exactly one value
    [InlineData("metadata.name", "Exists", "", false)]
    [InlineData("metadata.labels", "In", "a", false)]
    [InlineData("metadata.name", "In", "a", true)]
    public void MatchFields_OnlyNameWithOneValueInOrNotIn(string key, string op, string values, bool matches)
    {
        var node = new NodeInfoProbe("a");

        Assert.Equal(matches, NodeAffinity.TermMatches(Term(fields: [Requirement(key, op, Split(values))]), node.Info));
    }

    // ---- NodeResourcesFit ----

    [Fact]
    public void InsufficientCpu()
    {
        var result = Scheduler.Schedule(Pod(cpu: "2"), [Node("pi-1", cpu: "1")], []);

        Assert.Equal("0/1 nodes are available: 1 Insufficient cpu.", result.Message);
    }

    [Fact]
    public void InsufficientMemory()
    {
        var result = Scheduler.Schedule(Pod(memory: "2Gi"), [Node("pi-1", memory: "1Gi")], []);

        Assert.Equal("0/1 nodes are available: 1 Insufficient memory.", result.Message);
    }

    [Fact]
    public void EveryShortageOfANode_IsReported()
    {
        var node = Node("pi-1", cpu: "1", memory: "1Gi", pods: "1");
        var pod = Pod(containers: [Container(requests: new() { ["cpu"] = "2", ["memory"] = "2Gi", [Gpio] = "1" })]);

        var result = Scheduler.Schedule(pod, [node], [Bound(Pod("x"), "pi-1")]);

        Assert.Equal("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient edgekube.io/gpio, 1 Insufficient memory, 1 Too many pods.", result.Message);
    }

    [Fact]
    public void ExtendedResource_GoesToTheNodeThatHasIt()
    {
        var nodes = new[] { Node("a"), Node("b", extra: new() { [Gpio] = "1" }) };
        var pod = Pod(containers: [Container(requests: new() { [Gpio] = "1" })]);

        Assert.Equal("b", Scheduler.Schedule(pod, nodes, []).NodeName);
        var result = Scheduler.Schedule(pod, nodes, [Bound(Pod("x", containers: [Container(requests: new() { [Gpio] = "1" })]), "b")]);
        Assert.Equal("0/2 nodes are available: 2 Insufficient edgekube.io/gpio.", result.Message);
    }

    [Fact]
    public void ExtendedResource_FromLimitsOnly()
    {
        // Extended resources are usually given as limits; the API server copies them into requests.
        var pod = Pod(containers: [Container(limits: new() { [Gpio] = "1" })]);

        var result = Scheduler.Schedule(pod, [Node("a")], []);

        Assert.Equal("0/1 nodes are available: 1 Insufficient edgekube.io/gpio.", result.Message);
    }

    [Fact]
    public void BoundPodsRequests_AreSubtracted()
    {
        var node = Node("pi-1", cpu: "2", memory: "4Gi");
        var assigned = new[] { Bound(Pod("x", cpu: "1500m"), "pi-1"), Bound(Pod("y", memory: "3Gi"), "pi-1") };

        Assert.Equal("0/1 nodes are available: 1 Insufficient cpu.", Scheduler.Schedule(Pod(cpu: "1"), [node], assigned).Message);
        Assert.Equal("0/1 nodes are available: 1 Insufficient memory.", Scheduler.Schedule(Pod(memory: "2Gi"), [node], assigned).Message);
        Assert.Equal("pi-1", Scheduler.Schedule(Pod(cpu: "500m", memory: "1Gi"), [node], assigned).NodeName);
    }

    [Fact]
    public void BoundPodsOnOtherOrUnknownNodes_DoNotCount()
    {
        var assigned = new[] { Bound(Pod("x", cpu: "2"), "other"), Bound(Pod("y", cpu: "2"), "gone"), Pod("pending", cpu: "2") };

        Assert.Equal("pi-1", Scheduler.Schedule(Pod(cpu: "2"), [Node("pi-1", cpu: "2"), Node("other", cpu: "2")], assigned).NodeName);
    }

    [Fact]
    public void RequestEqualToFree_Fits()
    {
        var assigned = new[] { Bound(Pod("x", cpu: "1", memory: "1Gi"), "pi-1") };

        Assert.Equal("pi-1", Scheduler.Schedule(Pod(cpu: "1", memory: "1Gi"), [Node("pi-1", cpu: "2", memory: "2Gi")], assigned).NodeName);
    }

    [Fact]
    public void CpuIsComparedInWholeMillicores_RoundedUp()
    {
        var assigned = new[] { Bound(Pod("x", cpu: "999m"), "pi-1") };

        Assert.Equal("pi-1", Scheduler.Schedule(Pod(cpu: "1m"), [Node("pi-1", cpu: "1")], assigned).NodeName);
        Assert.Null(Scheduler.Schedule(Pod(cpu: "1100u"), [Node("pi-1", cpu: "1")], assigned).NodeName);
    }

    [Fact]
    public void PodWithoutRequests_FitsAFullNode_UnlessItHasNoPodRoom()
    {
        var node = Node("pi-1", cpu: "1", memory: "1Gi", pods: "2");

        Assert.Equal("pi-1", Scheduler.Schedule(Pod(), [node], [Bound(Pod("x", cpu: "1", memory: "1Gi"), "pi-1")]).NodeName);
        var full = new[] { Bound(Pod("x", cpu: "1", memory: "1Gi"), "pi-1"), Bound(Pod("y"), "pi-1") };
        Assert.Equal("0/1 nodes are available: 1 Too many pods.", Scheduler.Schedule(Pod(), [node], full).Message);
    }

    [Fact]
    public void NodeWithoutPodsAllocatable_HoldsNoPods_AsInKubernetes()
    {
        var node = Node("pi-1");
        node.Status.Allocatable.Remove("pods");

        Assert.Equal("0/1 nodes are available: 1 Too many pods.", Scheduler.Schedule(Pod(), [node], []).Message);
    }

    [Fact]
    public void NodeWithoutAllocatable_UsesCapacity()
    {
        var node = Node("pi-1", cpu: "1");
        node.Status.Capacity = node.Status.Allocatable;
        node.Status.Allocatable = null;

        Assert.Equal("pi-1", Scheduler.Schedule(Pod(cpu: "1"), [node], []).NodeName);
        Assert.Equal("0/1 nodes are available: 1 Insufficient cpu.", Scheduler.Schedule(Pod(cpu: "2"), [node], []).Message);
    }

    [Fact]
    public void ZeroRequest_IsNotChecked()
    {
        var pod = Pod(containers: [Container(requests: new() { [Gpio] = "0", ["cpu"] = "0" })]);

        Assert.Equal("pi-1", Scheduler.Schedule(pod, [Node("pi-1", cpu: "0")], []).NodeName);
    }

    [Fact]
    public void UnknownResourceWithoutDomain_IsIgnored()
    {
        var pod = Pod(containers: [Container(requests: new() { ["widgets"] = "5" })]);

        Assert.Equal("pi-1", Scheduler.Schedule(pod, [Node("pi-1")], []).NodeName);
    }

    [Fact]
    public void InitContainerLargerThanAppContainers_Decides()
    {
        var pod = Pod(
            containers: [Container(requests: new() { ["cpu"] = "500m" }), Container(requests: new() { ["cpu"] = "500m" })],
            initContainers: [Container(requests: new() { ["cpu"] = "2" }), Container(requests: new() { ["cpu"] = "1" })]);

        Assert.Equal(2m, PodResources.PodRequests(pod.Spec)["cpu"]);
        Assert.Equal("0/1 nodes are available: 1 Insufficient cpu.", Scheduler.Schedule(pod, [Node("pi-1", cpu: "1500m")], []).Message);
        Assert.Equal("pi-1", Scheduler.Schedule(pod, [Node("pi-1", cpu: "2")], []).NodeName);
    }

    [Fact]
    public void AppContainersLargerThanAnyInitContainer_Decide()
    {
        var pod = Pod(
            containers: [Container(requests: new() { ["cpu"] = "1", ["memory"] = "100Mi" }), Container(requests: new() { ["cpu"] = "1" })],
            initContainers: [Container(requests: new() { ["cpu"] = "1500m", ["memory"] = "1Gi" })]);

        var requests = PodResources.PodRequests(pod.Spec);

        Assert.Equal(2m, requests["cpu"]);
        Assert.Equal(1024m * 1024 * 1024, requests["memory"]);
    }

    [Fact]
    public void LimitsWithoutRequests_CountAsRequests_PerResource()
    {
        var pod = Pod(containers:
        [
            Container(limits: new() { ["cpu"] = "2", ["memory"] = "1Gi" }),
            Container(requests: new() { ["cpu"] = "250m" }, limits: new() { ["cpu"] = "1", ["memory"] = "512Mi" }),
        ]);

        var requests = PodResources.PodRequests(pod.Spec);

        Assert.Equal(2.25m, requests["cpu"]);
        Assert.Equal(1536m * 1024 * 1024, requests["memory"]);
        Assert.Equal("0/1 nodes are available: 1 Insufficient cpu.", Scheduler.Schedule(pod, [Node("pi-1", cpu: "2")], []).Message);
    }

    [Fact]
    public void InitContainerLimits_CountAsRequests()
    {
        var pod = Pod(containers: [Container(requests: new() { ["cpu"] = "100m" })], initContainers: [Container(limits: new() { ["cpu"] = "3" })]);

        Assert.Equal(3m, PodResources.PodRequests(pod.Spec)["cpu"]);
    }

    [Fact]
    public void Overhead_IsAdded()
    {
        var pod = Pod(cpu: "1", memory: "1Gi");
        pod.Spec.Overhead = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("250m"), ["memory"] = new("120Mi") };

        var requests = PodResources.PodRequests(pod.Spec);

        Assert.Equal(1.25m, requests["cpu"]);
        Assert.Equal(1144m * 1024 * 1024, requests["memory"]);
        Assert.Equal("0/1 nodes are available: 1 Insufficient cpu.", Scheduler.Schedule(pod, [Node("pi-1", cpu: "1")], []).Message);
    }

    [Fact]
    public void SidecarInitContainers_RunBesideAppAndLaterInitContainers()
    {
        var sidecar = Container(requests: new() { ["cpu"] = "1" });
        sidecar.RestartPolicy = "Always";
        var pod = Pod(
            containers: [Container(requests: new() { ["cpu"] = "500m" })],
            initContainers: [sidecar, Container(requests: new() { ["cpu"] = "2" })]);

        // max(app 0.5 + sidecar 1, init 2 + sidecar 1 started before it) = 3
        Assert.Equal(3m, PodResources.PodRequests(pod.Spec)["cpu"]);
    }

    [Fact]
    public void SidecarAfterInitContainer_DoesNotAddToIt()
    {
        var sidecar = Container(requests: new() { ["cpu"] = "1" });
        sidecar.RestartPolicy = "Always";
        var pod = Pod(
            containers: [Container(requests: new() { ["cpu"] = "500m" })],
            initContainers: [Container(requests: new() { ["cpu"] = "2" }), sidecar]);

        // max(app 0.5 + sidecar 1, init 2) = 2
        Assert.Equal(2m, PodResources.PodRequests(pod.Spec)["cpu"]);
    }

    [Fact]
    public void PodLevelRequests_ReplaceContainerSum()
    {
        var pod = Pod(containers: [Container(requests: new() { ["cpu"] = "2", [Gpio] = "1" })]);
        pod.Spec.Resources = new V1ResourceRequirements { Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("1") } };

        var requests = PodResources.PodRequests(pod.Spec);

        Assert.Equal(1m, requests["cpu"]);
        Assert.Equal(1m, requests[Gpio]);
    }

    [Fact]
    public void PodLevelLimits_CountOnlyWhenNoContainerRequests()
    {
        var pod = Pod(containers: [Container(requests: new() { ["memory"] = "100Mi" })]);
        pod.Spec.Resources = new V1ResourceRequirements
        {
            Limits = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("1"), ["memory"] = new("1Gi") },
        };

        var requests = PodResources.PodRequests(pod.Spec);

        Assert.Equal(1m, requests["cpu"]);
        Assert.Equal(100m * 1024 * 1024, requests["memory"]);
    }

    [Fact]
    public void PodRequests_EmptySpec_IsEmpty_AndSchedulerForwards()
    {
        Assert.Empty(PodResources.PodRequests(new V1PodSpec()));
        var spec = Pod(cpu: "1").Spec;
        Assert.Equal(PodResources.PodRequests(spec), Scheduler.PodRequests(spec));
    }

    // ---- failure message ----

    [Fact]
    public void Message_CountsAndSortsReasons_AsKubeScheduler()
    {
        var nodes = new[]
        {
            Node("a", labels: new() { ["zone"] = "shed" }, cpu: "1"),
            Node("b"),
            Node("c"),
        };
        var pod = Pod(cpu: "2", nodeSelector: new() { ["zone"] = "shed" });

        var result = Scheduler.Schedule(pod, nodes, []);

        Assert.Equal("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector.", result.Message);
    }

    [Fact]
    public void Message_EveryKindOfReason()
    {
        var nodes = new[]
        {
            Cordon(Node("a")),
            Node("b", taints: [Taint(NotReadyKey, null, "NoSchedule")]),
            Node("c", taints: [Taint(NotReadyKey, null, "NoSchedule")]),
            Node("d", taints: [Taint("dedicated", "gpio", "NoSchedule")]),
            Node("e", labels: new() { ["sensor"] = "none" }),
            Node("f", labels: new() { ["sensor"] = "bme280" }, cpu: "1"),
            Node("g", labels: new() { ["sensor"] = "bme280" }, pods: "0"),
        };
        var pod = Pod(cpu: "2", nodeSelector: new() { ["sensor"] = "bme280" });

        var result = Scheduler.Schedule(pod, nodes, []);

        Assert.Equal(
            "0/7 nodes are available: 1 Insufficient cpu, 1 Too many pods, 1 node(s) didn't match Pod's node affinity/selector, "
            + "1 node(s) had untolerated taint {dedicated: gpio}, 1 node(s) were unschedulable, "
            + "2 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.",
            result.Message);
    }

    [Fact]
    public void Message_SortsWholeStrings_LikeGo()
    {
        // Go's sort.Strings over "count reason": "10 ..." sorts before "2 ...".
        var nodes = Enumerable.Range(0, 10).Select(i => Node($"m{i}")).Append(Node("x", labels: new() { ["zone"] = "shed" }, cpu: "1")).Append(Node("y", labels: new() { ["zone"] = "shed" }, cpu: "1"));
        var pod = Pod(cpu: "2", nodeSelector: new() { ["zone"] = "shed" });

        var result = Scheduler.Schedule(pod, nodes.ToList(), []);

        Assert.Equal("0/12 nodes are available: 10 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu.", result.Message);
    }

    [Fact]
    public void NodeCountsOnce_ForItsFirstFailingFilter()
    {
        var bad = new Func<string, V1Node>(name => Node(name, cpu: "1", labels: new() { ["zone"] = "house" }, taints: [Taint("k", "v", "NoSchedule")]));
        var pod = Pod(cpu: "2", nodeSelector: new() { ["zone"] = "shed" });

        Assert.Equal("0/1 nodes are available: 1 node(s) were unschedulable.", Scheduler.Schedule(pod, [Cordon(bad("a"))], []).Message);
        Assert.Equal("0/1 nodes are available: 1 node(s) had untolerated taint {k: v}.", Scheduler.Schedule(pod, [bad("a")], []).Message);
        var untainted = Node("a", cpu: "1", labels: new() { ["zone"] = "house" });
        Assert.Equal("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.", Scheduler.Schedule(pod, [untainted], []).Message);
    }

    [Fact]
    public void FitErrorMessage_Format()
    {
        var message = Scheduler.FitErrorMessage(3, new Dictionary<string, int> { ["node(s) were unschedulable"] = 2, ["Insufficient memory"] = 1 });

        Assert.Equal("0/3 nodes are available: 1 Insufficient memory, 2 node(s) were unschedulable.", message);
    }

    // ---- scoring ----

    [Fact]
    public void LeastAllocated_PrefersTheEmptierNode()
    {
        var assigned = new[] { Bound(Pod("x", cpu: "3", memory: "6Gi"), "a") };

        Assert.Equal("b", Scheduler.Schedule(Pod(cpu: "500m", memory: "512Mi"), [Node("a"), Node("b")], assigned).NodeName);
    }

    [Fact]
    public void LeastAllocated_PrefersTheBiggerNode()
    {
        var nodes = new[] { Node("a", cpu: "1", memory: "1Gi"), Node("b", cpu: "4", memory: "8Gi") };

        Assert.Equal("b", Scheduler.Schedule(Pod(cpu: "500m", memory: "256Mi"), nodes, []).NodeName);
    }

    [Fact]
    public void Scores_FollowTheDocumentedFormula()
    {
        var spec = Pod(cpu: "1", memory: "2Gi").Spec;
        var node = NodeInfoProbe.Create(Node("a", cpu: "4", memory: "8Gi"), []);

        var score = Assert.Single(Scoring.Score(spec, [node]));

        // cpu (4000 − 1000)·100/4000 = 75, memory (8 − 2)·100/8 = 75; fractions equal; nothing to avoid.
        Assert.Equal(new Scoring.NodeScore("a", 75, 100, 100, 0, 100), score);
        Assert.Equal(75 + 100 + 3 * 100 + 2 * 0 + 2 * 100, score.Total);
    }

    [Fact]
    public void LeastAllocated_CountsStandInsForContainersWithoutRequests()
    {
        var bound = Bound(Pod("x"), "a");
        var node = NodeInfoProbe.Create(Node("a", cpu: "1", memory: "1000Mi"), [bound]);

        var score = Assert.Single(Scoring.Score(Pod().Spec, [node]));

        // cpu: 100m + 100m of 1000m → 80; memory 200Mi + 200Mi of 1000Mi → 60.
        Assert.Equal(70, score.LeastAllocated);
        Assert.Equal(0, score.BalancedAllocation);
    }

    [Fact]
    public void BalancedAllocation_IsOneMinusHalfTheFractionGap()
    {
        var bound = Bound(Pod("x", cpu: "2"), "a");
        var node = NodeInfoProbe.Create(Node("a", cpu: "4", memory: "4Gi"), [bound]);

        var score = Assert.Single(Scoring.Score(Pod(cpu: "1", memory: "1Gi").Spec, [node]));

        // cpu (2 + 1)/4 = 0.75, memory 1/4 = 0.25 → (1 − 0.25)·100.
        Assert.Equal(75, score.BalancedAllocation);
    }

    [Fact]
    public void BalancedAllocation_PrefersTheNodeThePodEvensOut()
    {
        // After placing the pod both nodes have LeastAllocated 50: a at cpu 3/4, memory 1/4 (25 and 75),
        // b at 2/4 and 2/4. Only the balance differs: a 75, b 100.
        var nodes = new[] { Node("a", cpu: "4", memory: "4Gi"), Node("b", cpu: "4", memory: "4Gi") };
        var assigned = new[] { Bound(Pod("x", cpu: "2", memory: "0"), "a"), Bound(Pod("y", cpu: "1", memory: "1Gi"), "b") };
        var pod = Pod(cpu: "1", memory: "1Gi");

        var scores = Scoring.Score(pod.Spec, [.. nodes.Select(n => NodeInfoProbe.Create(n, [.. assigned.Where(p => p.Spec.NodeName == n.Metadata.Name)]))]);

        Assert.Equal(new[] { 50L, 50L }, scores.Select(s => s.LeastAllocated));
        Assert.Equal(new[] { 75L, 100L }, scores.Select(s => s.BalancedAllocation));
        Assert.Equal("b", Scheduler.Schedule(pod, nodes, assigned).NodeName);
    }

    [Fact]
    public void PreferNoScheduleTaint_IsAvoided()
    {
        var nodes = new[] { Node("a", taints: [Taint("soft", "x", "PreferNoSchedule")]), Node("b") };

        Assert.Equal("b", Scheduler.Schedule(Pod(), nodes, []).NodeName);
    }

    [Theory]
    [InlineData(null, true)]
    [InlineData("PreferNoSchedule", true)]
    [InlineData("NoSchedule", false)]
    public void PreferNoScheduleTaint_Tolerated_IsNotAvoided(string? effect, bool tolerated)
    {
        var nodes = new[] { Node("a", taints: [Taint("soft", "x", "PreferNoSchedule")]), Node("b") };
        var pod = Pod(tolerations: [Toleration("soft", "Exists", null, effect)]);

        Assert.Equal(tolerated ? "a" : "b", Scheduler.Schedule(pod, nodes, []).NodeName);
    }

    [Fact]
    public void FewerPreferNoScheduleTaints_IsBetter()
    {
        var nodes = new[]
        {
            Node("a", taints: [Taint("s1", "x", "PreferNoSchedule"), Taint("s2", "x", "PreferNoSchedule")]),
            Node("b", taints: [Taint("s1", "x", "PreferNoSchedule")]),
        };

        var scores = Scoring.Score(Pod().Spec, [.. nodes.Select(n => NodeInfoProbe.Create(n, []))]);

        Assert.Equal(new[] { 0L, 50L }, scores.Select(s => s.TaintToleration));
        Assert.Equal("b", Scheduler.Schedule(Pod(), nodes, []).NodeName);
    }

    [Fact]
    public void PreferredNodeAffinity_AttractsThePod()
    {
        var nodes = new[] { Node("a"), Node("b", labels: new() { ["zone"] = "shed" }), Node("c", labels: new() { ["zone"] = "house" }) };
        var pod = Pod();
        pod.Spec.Affinity = new V1Affinity
        {
            NodeAffinity = new V1NodeAffinity
            {
                PreferredDuringSchedulingIgnoredDuringExecution =
                [
                    new V1PreferredSchedulingTerm { Weight = 10, Preference = Term(expressions: [Requirement("zone", "In", "shed")]) },
                    new V1PreferredSchedulingTerm { Weight = 50, Preference = Term(expressions: [Requirement("zone", "In", "house")]) },
                ],
            },
        };

        Assert.Equal("c", Scheduler.Schedule(pod, nodes, []).NodeName);
        var scores = Scoring.Score(pod.Spec, [.. nodes.Select(n => NodeInfoProbe.Create(n, []))]);
        Assert.Equal(new[] { 0L, 20L, 100L }, scores.Select(s => s.NodeAffinity));
    }

    [Fact]
    public void Spreading_TenPodsOverThreeIdenticalNodes_Gives4_3_3()
    {
        var nodes = new[] { Node("pi-c"), Node("pi-a"), Node("pi-b") };
        var assigned = new List<V1Pod>();
        var order = new List<string>();

        for (var i = 0; i < 10; i++)
        {
            var pod = Pod($"p{i}");
            var result = Scheduler.Schedule(pod, nodes, assigned);
            Assert.NotNull(result.NodeName);
            order.Add(result.NodeName);
            assigned.Add(Bound(pod, result.NodeName));
        }

        Assert.Equal(new[] { "pi-a", "pi-b", "pi-c", "pi-a", "pi-b", "pi-c", "pi-a", "pi-b", "pi-c", "pi-a" }, order);
        var counts = order.GroupBy(n => n).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(4, counts["pi-a"]);
        Assert.Equal(3, counts["pi-b"]);
        Assert.Equal(3, counts["pi-c"]);
    }

    [Fact]
    public void Spreading_CountsPodsThatRequestNothing()
    {
        // Explicit zero requests get no scoring stand-ins, so only the pod count tells the nodes apart.
        var zero = () => Pod(containers: [Container(requests: new() { ["cpu"] = "0", ["memory"] = "0" })]);
        var assigned = new[] { Bound(zero(), "a"), Bound(zero(), "a") };

        var scores = Scoring.Score(zero().Spec, [NodeInfoProbe.Create(Node("a"), assigned), NodeInfoProbe.Create(Node("b"), [])]);

        Assert.Equal(scores[0].LeastAllocated, scores[1].LeastAllocated);
        Assert.Equal(new[] { 0L, 100L }, scores.Select(s => s.Spread));
        Assert.Equal("b", Scheduler.Schedule(zero(), [Node("a"), Node("b")], assigned).NodeName);
    }

    [Fact]
    public void Spreading_WithRequests_KeepsNodesEven()
    {
        var nodes = new[] { Node("a"), Node("b"), Node("c") };
        var assigned = new List<V1Pod>();

        for (var i = 0; i < 9; i++)
        {
            var pod = Pod($"p{i}", cpu: "250m", memory: "256Mi");
            assigned.Add(Bound(pod, Scheduler.Schedule(pod, nodes, assigned).NodeName!));
        }

        var counts = assigned.GroupBy(p => p.Spec.NodeName).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(new Dictionary<string, int> { ["a"] = 3, ["b"] = 3, ["c"] = 3 }, counts);
    }

    [Fact]
    public void Ties_GoToTheFirstNodeName_WhateverTheInputOrder()
    {
        var names = new[] { "pi-10", "pi-2", "node", "Pi-9", "pi-1" };

        foreach (var permutation in new[] { names, Enumerable.Reverse(names).ToArray(), [names[2], names[4], names[0], names[3], names[1]] })
        {
            var result = Scheduler.Schedule(Pod(cpu: "100m"), [.. permutation.Select(n => Node(n))], []);
            Assert.Equal("Pi-9", result.NodeName); // ordinal: upper case before lower case
        }
    }

    [Fact]
    public void SameInput_SameResult()
    {
        var nodes = new[] { Node("a"), Node("b", cpu: "2"), Node("c", memory: "4Gi") };
        var assigned = new[] { Bound(Pod("x", cpu: "1"), "a"), Bound(Pod("y", memory: "1Gi"), "c") };
        var pod = Pod(cpu: "300m", memory: "300Mi");

        var first = Scheduler.Schedule(pod, nodes, assigned);

        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(first, Scheduler.Schedule(pod, [.. Enumerable.Reverse(nodes)], [.. Enumerable.Reverse(assigned)]));
        }
    }

    // ---- builders ----

    private static V1Pod Pod(string name = "p", string? cpu = null, string? memory = null,
        List<V1Container>? containers = null, List<V1Container>? initContainers = null,
        Dictionary<string, string>? nodeSelector = null, List<V1Toleration>? tolerations = null,
        List<V1NodeSelectorTerm>? required = null)
    {
        var requests = new Dictionary<string, string>();
        if (cpu is not null)
        {
            requests["cpu"] = cpu;
        }

        if (memory is not null)
        {
            requests["memory"] = memory;
        }

        var spec = new V1PodSpec
        {
            Containers = containers ?? [Container(requests: requests)],
            InitContainers = initContainers,
            NodeSelector = nodeSelector,
            Tolerations = tolerations,
        };
        if (required is not null)
        {
            spec.Affinity = new V1Affinity
            {
                NodeAffinity = new V1NodeAffinity
                {
                    RequiredDuringSchedulingIgnoredDuringExecution = new V1NodeSelector { NodeSelectorTerms = required },
                },
            };
        }

        return new V1Pod { Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = "default" }, Spec = spec };
    }

    private static V1Pod Bound(V1Pod pod, string nodeName)
    {
        pod.Spec.NodeName = nodeName;
        return pod;
    }

    private static V1Container Container(Dictionary<string, string>? requests = null, Dictionary<string, string>? limits = null) =>
        new()
        {
            Name = "c",
            Image = "busybox",
            Resources = new V1ResourceRequirements { Requests = Quantities(requests), Limits = Quantities(limits) },
        };

    private static V1Node Node(string name, string cpu = "4", string memory = "8Gi", string pods = "110",
        Dictionary<string, string>? labels = null, List<V1Taint>? taints = null, Dictionary<string, string>? extra = null)
    {
        var allocatable = new Dictionary<string, string>(extra ?? []) { ["cpu"] = cpu, ["memory"] = memory, ["pods"] = pods };
        return new V1Node
        {
            Metadata = new V1ObjectMeta { Name = name, Labels = labels },
            Spec = new V1NodeSpec { Taints = taints },
            Status = new V1NodeStatus
            {
                Allocatable = Quantities(allocatable),
                Conditions = [new V1NodeCondition { Type = "Ready", Status = "True" }],
            },
        };
    }

    private static V1Node Cordon(V1Node node)
    {
        node.Spec.Unschedulable = true;
        return node;
    }

    private static V1Taint Taint(string key, string? value, string effect) => new() { Key = key, Value = value, Effect = effect };

    private static V1Toleration Toleration(string? key, string? op, string? value, string? effect) =>
        new() { Key = key, OperatorProperty = op, Value = value, Effect = effect };

    private static V1NodeSelectorTerm Term(List<V1NodeSelectorRequirement>? expressions = null, List<V1NodeSelectorRequirement>? fields = null) =>
        new() { MatchExpressions = expressions, MatchFields = fields };

    private static V1NodeSelectorRequirement Requirement(string key, string op, params string[] values) =>
        new() { Key = key, OperatorProperty = op, Values = values.Length == 0 ? null : [.. values] };

    private static string[] Split(string csv) => csv.Length == 0 ? [] : csv.Split(',');

    private static Dictionary<string, ResourceQuantity>? Quantities(Dictionary<string, string>? values) =>
        values?.ToDictionary(kv => kv.Key, kv => new ResourceQuantity(kv.Value));

    /// <summary>Builds the scheduler's internal view of a node for the white-box tests.</summary>
    private sealed class NodeInfoProbe(string name)
    {
        public NodeInfo Info { get; } = Create(Node(name), []);

        public static NodeInfo Create(V1Node node, IReadOnlyList<V1Pod> bound) => NodeInfo.Create(node, bound);
    }
}

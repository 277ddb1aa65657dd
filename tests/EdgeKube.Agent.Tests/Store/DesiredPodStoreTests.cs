using EdgeKube.Agent.Pods.Sources;
using EdgeKube.Agent.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Agent.Tests.Store;

public sealed class DesiredPodStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("edgekube-store-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Pods_are_persisted_before_they_are_announced_and_survive_a_restart()
    {
        var store = new DesiredPodStore(_dir, NullLogger<DesiredPodStore>.Instance);
        var announced = new List<string>();
        store.PodUpdated += p =>
        {
            Assert.True(File.Exists(Path.Combine(_dir, "desired", p.Uid + ".json")));
            announced.Add(p.Uid);
        };
        var pod = TestPods.Simple(uid: "uid-1");
        store.SetSource("file", [pod], []);
        Assert.Equal(["uid-1"], announced);

        var reloaded = new DesiredPodStore(_dir, NullLogger<DesiredPodStore>.Instance);
        reloaded.Load();
        var loaded = Assert.Single(reloaded.All());
        Assert.Equal(("uid-1", "file", "web"), (loaded.Uid, loaded.Source, loaded.Pod.Metadata.Name));
    }

    [Fact]
    public void Setting_a_source_again_removes_what_it_no_longer_has_and_ignores_unchanged_pods()
    {
        var store = new DesiredPodStore(_dir, NullLogger<DesiredPodStore>.Instance);
        var events = new List<string>();
        store.PodUpdated += p => events.Add("+" + p.Uid);
        store.PodRemoved += p => events.Add("-" + p.Uid);
        store.SetSource("file", [TestPods.Simple(uid: "a"), TestPods.Simple(uid: "b")], []);
        store.SetSource("file", [TestPods.Simple(uid: "b")], []);
        store.SetSource("other", [TestPods.Simple(uid: "c")], []);
        Assert.Equal(["+a", "+b", "-a", "+c"], events);
        Assert.False(File.Exists(Path.Combine(_dir, "desired", "a.json")));
    }

    [Fact]
    public void A_pod_handed_again_is_neither_written_nor_announced_again_and_a_changed_one_is()
    {
        var store = new DesiredPodStore(_dir, NullLogger<DesiredPodStore>.Instance);
        var events = new List<string>();
        store.PodUpdated += p => events.Add("+" + p.Uid + ":" + p.Pod.Spec.Containers[0].Image);
        var a = TestPods.Simple(uid: "a");
        var b = TestPods.Simple(uid: "b");
        store.SetSource("mqtt", [a], []);
        var fileA = Path.Combine(_dir, "desired", "a.json");
        File.Delete(fileA);

        // The MQTT source hands the same objects back with each message; only the new pod is written.
        store.SetSource("mqtt", [a, b], []);
        Assert.False(File.Exists(fileA));

        var changed = TestPods.Simple(uid: "a");
        changed.Spec.Containers[0].Image = "busybox:changed";
        store.SetSource("mqtt", [changed, b], []);
        Assert.True(File.Exists(fileA));
        Assert.Equal(["+a:" + a.Spec.Containers[0].Image, "+b:" + b.Spec.Containers[0].Image, "+a:busybox:changed"], events);
    }

    [Fact]
    public void Garbage_files_are_skipped_and_quarantined()
    {
        var store = new DesiredPodStore(_dir, NullLogger<DesiredPodStore>.Instance);
        store.SetSource("file", [TestPods.Simple(uid: "good")], []);
        File.WriteAllText(Path.Combine(_dir, "desired", "torn.json"), "{\"source\":\"file\",\"pod\":\"{\\\"api");
        File.WriteAllText(Path.Combine(_dir, "desired", "empty.json"), "");
        File.WriteAllText(Path.Combine(_dir, "desired", ".good.json.123.abc.tmp"), "half");

        var reloaded = new DesiredPodStore(_dir, NullLogger<DesiredPodStore>.Instance);
        reloaded.Load();
        Assert.Equal(["good"], reloaded.All().Select(p => p.Uid));
        Assert.True(File.Exists(Path.Combine(_dir, "desired", "torn.json.corrupt")));
        Assert.False(File.Exists(Path.Combine(_dir, "desired", ".good.json.123.abc.tmp")));
    }
}

public sealed class StaticPodSourceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("edgekube-static-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (StaticPodSource Source, DesiredPodStore Store) Create()
    {
        var manifests = Directory.CreateDirectory(Path.Combine(_dir, "manifests")).FullName;
        var store = new DesiredPodStore(Path.Combine(_dir, "state"), NullLogger<DesiredPodStore>.Instance);
        return (new StaticPodSource(manifests, "node1", store, new FakeTimeProvider(), NullLogger<StaticPodSource>.Instance), store);
    }

    private const string Pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: c, image: x:1}]\n";

    [Fact]
    public void Files_become_static_pods_bound_to_the_node()
    {
        var (source, store) = Create();
        File.WriteAllText(Path.Combine(source.Directory, "web.yaml"), Pod);
        File.WriteAllText(Path.Combine(source.Directory, ".hidden.yaml"), Pod.Replace("web", "hidden"));
        File.WriteAllText(Path.Combine(source.Directory, "notes.txt"), "not a manifest");
        source.Scan();
        var pod = Assert.Single(store.All()).Pod;
        Assert.Equal("web-node1", pod.Metadata.Name);
        Assert.Equal("node1", pod.Spec.NodeName);
        Assert.Equal("default", pod.Metadata.NamespaceProperty);
        Assert.Equal(32, pod.Metadata.Uid.Length);
        Assert.Equal("file", pod.Metadata.Annotations["kubernetes.io/config.source"]);
    }

    [Fact]
    public void A_changed_file_is_a_new_pod_and_a_removed_file_removes_it()
    {
        var (source, store) = Create();
        var file = Path.Combine(source.Directory, "web.yaml");
        File.WriteAllText(file, Pod);
        source.Scan();
        var first = store.All().Single().Uid;
        source.Scan();
        Assert.Equal(first, store.All().Single().Uid);

        File.WriteAllText(file, Pod.Replace("x:1", "x:2"));
        File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddSeconds(5));
        source.Scan();
        var second = store.All().Single().Uid;
        Assert.NotEqual(first, second);

        File.Delete(file);
        source.Scan();
        Assert.Empty(store.All());
    }

    [Fact]
    public void Invalid_and_duplicate_manifests_are_rejected_with_reasons()
    {
        var (source, store) = Create();
        File.WriteAllText(Path.Combine(source.Directory, "a.yaml"), Pod);
        File.WriteAllText(Path.Combine(source.Directory, "b.yaml"), Pod);
        File.WriteAllText(Path.Combine(source.Directory, "c.yaml"), "kind: Pod\napiVersion: v1\nmetadata: {name: c}\nspec: {containers: []}\n");
        File.WriteAllText(Path.Combine(source.Directory, "d.json"), "{ nope");
        source.Scan();
        Assert.Single(store.All());
        var rejected = store.Rejected().ToDictionary(r => Path.GetFileName(r.Origin), r => r.Reason);
        Assert.Contains("duplicate pod default/web-node1", rejected["b.yaml"]);
        Assert.Contains("spec.containers: Required value", rejected["c.yaml"]);
        Assert.Contains("not valid JSON", rejected["d.json"]);
    }
}

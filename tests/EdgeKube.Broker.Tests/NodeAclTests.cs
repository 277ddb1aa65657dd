namespace EdgeKube.Broker.Tests;

public class NodeAclTests
{
    private readonly NodeAcl _acl = new();

    [Theory]
    [InlineData("board-1", "edgekube/v1/nodes/board-1/status", true)]
    [InlineData("board-1", "edgekube/v1/nodes/board-1/presence", true)]
    [InlineData("board-1", "edgekube/v1/nodes/board-1/lease", true)]
    [InlineData("board-1", "edgekube/v1/nodes/board-1/pods/default/web/status", true)]
    [InlineData("board-1", "edgekube/v1/nodes/board-1/replies/42", true)]
    [InlineData("board-1", "edgekube/v1/nodes/board-1/pods/default/web", false)]
    [InlineData("board-1", "edgekube/v1/nodes/board-1/pods", false)]
    [InlineData("board-1", "edgekube/v1/nodes/board-1/spec", false)]
    [InlineData("board-1", "edgekube/v1/nodes/board-1/identify", false)]
    [InlineData("board-1", "edgekube/v1/nodes/board-2/identify", false)]
    [InlineData(NodeAcl.MasterUser, "edgekube/v1/nodes/board-1/identify", true)]
    [InlineData("board-1", "edgekube/v1/nodes/board-2/status", false)]
    [InlineData("board-1", "edgekube/v1/nodes/board-2/pods/default/web/status", false)]
    [InlineData("board-1", "edgekube/v1/cluster/routes", false)]
    [InlineData("board-1", "other/topic", false)]
    [InlineData(NodeAcl.MasterUser, "edgekube/v1/nodes/board-1/pods/default/web", true)]
    [InlineData(NodeAcl.MasterUser, "edgekube/v1/cluster/routes", true)]
    [InlineData(NodeAcl.MasterUser, "other/topic", false)]
    public void Publish_rules(string user, string topic, bool allowed) => Assert.Equal(allowed, _acl.CanPublish(user, topic));

    [Theory]
    [InlineData("board-1", "edgekube/v1/nodes/board-1/#", true)]
    [InlineData("board-1", "edgekube/v1/nodes/board-1/pods/+/+", true)]
    [InlineData("board-1", "edgekube/v1/cluster/#", true)]
    [InlineData("board-1", "edgekube/v1/nodes/+/status", false)]
    [InlineData("board-1", "edgekube/v1/nodes/#", false)]
    [InlineData("board-1", "edgekube/v1/#", false)]
    [InlineData("board-1", "#", false)]
    [InlineData("board-1", "edgekube/v1/nodes/board-2/pods/+/+", false)]
    [InlineData("board-1", "edgekube/v1/nodes/board-1/identify", true)]
    [InlineData("board-1", "edgekube/v1/nodes/board-2/identify", false)]
    [InlineData("board-1", "edgekube/v1/nodes/+/identify", false)]
    [InlineData(NodeAcl.MasterUser, "edgekube/v1/nodes/+/status", true)]
    [InlineData(NodeAcl.MasterUser, "#", true)]
    public void Subscribe_rules(string user, string filter, bool allowed) => Assert.Equal(allowed, _acl.CanSubscribe(user, filter));

    [Theory]
    [InlineData("a/+/c", "a/b/c", true)]
    [InlineData("a/#", "a", true)]
    [InlineData("a/#", "a/b/c", true)]
    [InlineData("a/+", "a/b/c", false)]
    [InlineData("a/b", "a/b/c", false)]
    public void Topic_matching_follows_mqtt(string filter, string topic, bool matches) => Assert.Equal(matches, NodeAcl.Matches(filter, topic));
}

public sealed class CredentialStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("edgekube-creds-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Passwords_verify_survive_a_restart_and_are_revocable()
    {
        var store = new CredentialStore(_dir);
        var password = store.Create("board-1");
        Assert.True(store.Verify("board-1", password));
        Assert.False(store.Verify("board-1", password + "x"));
        Assert.False(store.Verify("board-2", password));
        Assert.DoesNotContain(password, File.ReadAllText(Path.Combine(_dir, "mqtt-credentials.json")));

        var reloaded = new CredentialStore(_dir);
        Assert.True(reloaded.Verify("board-1", password));
        Assert.True(reloaded.Remove("board-1"));
        Assert.False(reloaded.Verify("board-1", password));
        Assert.False(new CredentialStore(_dir).Verify("board-1", password));
    }

    [Fact]
    public void Hashes_have_the_mosquitto_pbkdf2_sha512_form()
    {
        var hash = CredentialStore.Hash("secret", new byte[12], 101);
        var parts = hash.Split('$');
        Assert.Equal(["", "7", "101"], parts[..3]);
        Assert.Equal(12, Convert.FromBase64String(parts[3]).Length);
        Assert.Equal(64, Convert.FromBase64String(parts[4]).Length);
    }
}

using EdgeKube.Agent.Status;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeKube.Agent.Tests.Status;

public sealed class StatusManagerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("edgekube-status-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private StatusManager New() => new(_dir, NullLogger<StatusManager>.Instance);

    private static V1PodStatus Running(string ip = "10.244.0.5", int restarts = 0) => new()
    {
        Phase = "Running",
        PodIP = ip,
        StartTime = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc),
        Conditions = [new V1PodCondition { Type = "Ready", Status = "True" }],
        ContainerStatuses =
        [
            new V1ContainerStatus
            {
                Name = "app", Image = "busybox:1", ImageID = "sha256:abc", Ready = true, RestartCount = restarts,
                State = new V1ContainerState { Running = new V1ContainerStateRunning { StartedAt = new DateTime(2026, 1, 1, 0, 0, 1, DateTimeKind.Utc) } },
            },
        ],
    };

    [Fact]
    public void An_equal_status_in_a_new_object_is_no_change_and_any_field_that_differs_is_one()
    {
        var statuses = New();
        var changes = new List<(string Uid, V1PodStatus Status)>();
        statuses.StatusChanged += (uid, s) => changes.Add((uid, s));

        Assert.True(statuses.Set("u1", Running()));
        Assert.False(statuses.Set("u1", Running()));
        Assert.True(statuses.Set("u1", Running(restarts: 1)));
        Assert.True(statuses.Set("u1", Running(ip: "10.244.0.6", restarts: 1)));
        Assert.False(statuses.Set("u1", Running(ip: "10.244.0.6", restarts: 1)));
        // Another pod with the same status is its own entry.
        Assert.True(statuses.Set("u2", Running()));

        Assert.Equal(["u1", "u1", "u1", "u2"], changes.Select(c => c.Uid));
        Assert.Equal(4, statuses.Updates);
        Assert.Equal("10.244.0.6", statuses.Get("u1")!.PodIP);
        Assert.Equal(1, statuses.Get("u1")!.ContainerStatuses[0].RestartCount);
    }

    [Fact]
    public void A_status_survives_a_restart_and_the_one_loaded_compares_equal_to_the_same_status_set_again()
    {
        var before = New();
        before.Set("u1", Running(restarts: 3));
        before.Set("u2", Running());
        before.Remove("u2");

        var after = New();
        after.Load();

        var loaded = after.Get("u1");
        Assert.NotNull(loaded);
        Assert.Equal(3, loaded.ContainerStatuses[0].RestartCount);
        Assert.Equal(new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc), loaded.StartTime);
        Assert.Null(after.Get("u2"));
        Assert.False(after.Set("u1", Running(restarts: 3)));
        Assert.True(after.Set("u1", Running(restarts: 4)));
    }

    [Fact]
    public void A_garbled_status_file_is_skipped_and_the_others_load()
    {
        var before = New();
        before.Set("u1", Running());
        File.WriteAllText(Path.Combine(_dir, "status", "u9.json"), "{\"uid\":\"u9\",\"status\":\"{not json");

        var after = New();
        after.Load();

        Assert.NotNull(after.Get("u1"));
        Assert.Null(after.Get("u9"));
    }

    [Fact]
    public void A_status_larger_than_the_thread_buffer_is_compared_whole()
    {
        var statuses = New();
        var big = Running();
        big.Message = new string('x', 200_000);
        Assert.True(statuses.Set("u1", big));

        var same = Running();
        same.Message = new string('x', 200_000);
        Assert.False(statuses.Set("u1", same));

        var lastCharDiffers = Running();
        lastCharDiffers.Message = new string('x', 199_999) + "y";
        Assert.True(statuses.Set("u1", lastCharDiffers));
        // The next (small) status uses a fresh buffer.
        Assert.True(statuses.Set("u1", Running()));
        Assert.False(statuses.Set("u1", Running()));
    }
}

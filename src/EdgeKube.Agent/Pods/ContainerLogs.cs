using System.Text;
using EdgeKube.Agent.Status;
using EdgeKube.Agent.Store;
using EdgeKube.Protocol;
using k8s.Models;

namespace EdgeKube.Agent.Pods;

/// <summary>
/// Reads containers' logs from the CRI log files that containerd writes
/// (<c>{pod-logs-dir}/{ns}_{name}_{uid}/{container}/{restartCount}.log</c>, one
/// <c>&lt;time&gt; &lt;stream&gt; &lt;F|P&gt; &lt;text&gt;</c> record per line), as kubelet serves <c>kubectl logs</c>.
/// </summary>
public sealed class ContainerLogs(DesiredPodStore desired, StatusManager statuses, NodeLayout layout)
{
    /// <summary>The most returned in one reply; the caller continues from the returned offset.</summary>
    public const int MaxChunkBytes = 128 * 1024;

    public LogsReply Read(LogsRequest request)
    {
        var pod = desired.All().Select(d => d.Pod).FirstOrDefault(p => p.Namespace() == request.Namespace && p.Name() == request.Name);
        if (pod is null)
        {
            return Error($"pods \"{request.Name}\" not found");
        }

        var names = PodValidation.AllContainers(pod.Spec).Select(c => c.Name).ToList();
        var container = request.Container;
        if (string.IsNullOrEmpty(container))
        {
            if (pod.Spec.Containers.Count != 1)
            {
                return Error($"a container name must be specified for pod {pod.Name()}, choose one of: [{string.Join(' ', pod.Spec.Containers.Select(c => c.Name))}]");
            }

            container = pod.Spec.Containers[0].Name;
        }
        else if (!names.Contains(container))
        {
            return Error($"container {container} is not valid for pod {pod.Name()}");
        }

        var status = statuses.Get(pod.Uid());
        var cs = (status?.ContainerStatuses ?? []).Concat(status?.InitContainerStatuses ?? []).FirstOrDefault(c => c.Name == container);
        if (cs is null || (cs.ContainerID is null && cs.LastState?.Terminated is null))
        {
            return Error($"container \"{container}\" in pod \"{pod.Name()}\" is waiting to start: {cs?.State?.Waiting?.Reason ?? "ContainerCreating"}");
        }

        var restart = cs.RestartCount;
        if (request.Previous)
        {
            if (restart == 0)
            {
                return Error($"previous terminated container \"{container}\" in pod \"{pod.Name()}\" not found");
            }

            restart--;
        }

        var path = Path.Combine(layout.PodLogDirectory(pod), container, restart + ".log");
        var running = !request.Previous && cs.State?.Running is not null;
        if (!File.Exists(path))
        {
            return new LogsReply(string.Empty, request.Offset ?? 0, null, running);
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        long start;
        if (request.Offset is { } offset)
        {
            start = Math.Min(offset, stream.Length);
        }
        else if (request.TailLines is { } tail)
        {
            start = TailStart(stream, tail);
        }
        else
        {
            start = 0;
        }

        stream.Position = start;
        var buffer = new byte[(int)Math.Min(MaxChunkBytes, stream.Length - start)];
        var read = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);

        // Only whole records: stop after the last newline in the chunk.
        var end = Array.LastIndexOf(buffer, (byte)'\n', Math.Max(0, read - 1));
        var usable = end < 0 ? 0 : end + 1;
        return new LogsReply(Decode(buffer.AsSpan(0, usable), request.Timestamps), start + usable, null, running);
    }

    /// <summary>Strips the CRI framing: "2026-01-01T00:00:00.000000000Z stdout F text".</summary>
    public static string Decode(ReadOnlySpan<byte> records, bool timestamps)
    {
        var sb = new StringBuilder();
        foreach (var line in Encoding.UTF8.GetString(records).Split('\n'))
        {
            if (line.Length == 0)
            {
                continue;
            }

            var first = line.IndexOf(' ');
            var second = first < 0 ? -1 : line.IndexOf(' ', first + 1);
            var third = second < 0 ? -1 : line.IndexOf(' ', second + 1);
            if (third < 0)
            {
                sb.Append(line).Append('\n');
                continue;
            }

            if (timestamps)
            {
                sb.Append(line, 0, first).Append(' ');
            }

            sb.Append(line, third + 1, line.Length - third - 1);
            if (line.AsSpan(second + 1, third - second - 1).SequenceEqual("F"))
            {
                sb.Append('\n');
            }
        }

        return sb.ToString();
    }

    private static long TailStart(FileStream stream, long lines)
    {
        if (lines <= 0)
        {
            return stream.Length;
        }

        var position = stream.Length;
        var seen = 0L;
        var buffer = new byte[4096];
        while (position > 0)
        {
            var size = (int)Math.Min(buffer.Length, position);
            position -= size;
            stream.Position = position;
            stream.ReadExactly(buffer, 0, size);
            for (var i = size - 1; i >= 0; i--)
            {
                if (buffer[i] == '\n' && position + i != stream.Length - 1 && ++seen == lines)
                {
                    return position + i + 1;
                }
            }
        }

        return 0;
    }

    private static LogsReply Error(string message) => new(string.Empty, 0, message, false);
}

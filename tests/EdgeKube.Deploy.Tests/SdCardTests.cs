namespace EdgeKube.Deploy.Tests;

/// <summary>
/// scripts/prepare-sd-card.sh (and <c>dotnet cake --target=PrepareSdCard</c>) on an image file built here
/// like a Raspberry Pi OS one: a DOS partition table, a FAT boot partition at sector 8192 with the usual
/// config.txt and one-line cmdline.txt, and a Linux root partition. Everything is read back with mtools.
/// </summary>
public sealed class SdCardTests : IDisposable
{
    private const long BootStartSector = 8192;
    private const string OriginalCmdline = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet";
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Image => _dir["raspios.img"];

    private string Join => _dir["join.yaml"];

    /// <summary>A 64 MiB image: partition 1 FAT (type c) at sector 8192, 40 MiB; partition 2 Linux.</summary>
    private async Task BuildImageAsync(bool withUserData = false)
    {
        await using (var f = File.Create(Image))
        {
            f.SetLength(64L << 20);
        }

        var table = _dir["table.sfdisk"];
        File.WriteAllText(table, "label: dos\nstart=8192, size=81920, type=c\nstart=90112, type=83\n");
        await Repo.MustRunAsync("sh", "-c", $"sfdisk --no-reread --no-tell-kernel '{Image}' < '{table}'");
        await Repo.MustRunAsync("mkfs.vfat", "-n", "bootfs", "--offset", BootStartSector.ToString(System.Globalization.CultureInfo.InvariantCulture), Image, "40960");
        File.WriteAllText(_dir["config.txt"], "# Raspberry Pi OS config.txt\ndtparam=audio=on\ncamera_auto_detect=1\n[cm4]\notg_mode=1\n[pi4]\narm_boost=1\n");
        File.WriteAllText(_dir["cmdline.txt"], OriginalCmdline + "\n");
        await MCopyAsync(_dir["config.txt"], "config.txt");
        await MCopyAsync(_dir["cmdline.txt"], "cmdline.txt");
        if (withUserData)
        {
            File.WriteAllText(_dir["user-data"], "#cloud-config\nhostname: raspberrypi\n");
            await MCopyAsync(_dir["user-data"], "user-data");
        }

        File.WriteAllText(Join, """
            # Join config for node pi-kitchen: copy to the board as /etc/edgekube/agent.yaml, then run edgekube-agent --config /etc/edgekube/agent.yaml
            apiVersion: edgekube.io/v1
            kind: AgentConfig
            nodeName: pi-kitchen
            broker:
              url: mqtt://192.168.1.10:1883
              username: pi-kitchen
              password: 3b6f0c5e9d
              topicPrefix: edgekube/v1

            """);
    }

    private string ImageAtOffset => $"{Image}@@{BootStartSector * 512}";

    private Task MCopyAsync(string file, string target) => Repo.MustRunAsync("mcopy", "-o", "-i", ImageAtOffset, file, "::/" + target);

    /// <summary>A file of the boot partition, read back with mtools.</summary>
    private async Task<string> ReadAsync(string path)
    {
        var (code, output) = await Repo.RunAsync("mtype", ["-i", ImageAtOffset, "::/" + path], environment: new Dictionary<string, string> { ["MTOOLS_SKIP_CHECK"] = "1" });
        Assert.True(code == 0, $"mtype {path}: {output}");
        return output;
    }

    private async Task<byte[]> ReadBytesAsync(string path)
    {
        var copy = _dir["readback-" + Path.GetFileName(path)];
        await Repo.MustRunAsync("mcopy", "-o", "-n", "-i", ImageAtOffset, "::/" + path, copy);
        return File.ReadAllBytes(copy);
    }

    private Task<(int Code, string Output)> PrepareAsync(params string[] extra) =>
        Repo.RunAsync("bash", ["scripts/prepare-sd-card.sh", "--image", Image, "--join", Join, .. extra]);

    private string FakeDeb()
    {
        var deb = _dir["edgekube-agent_0.1.0_arm64.deb"];
        File.WriteAllBytes(deb, [.. Enumerable.Range(0, 70_000).Select(i => (byte)(i * 7))]);
        return deb;
    }

    [Fact]
    public async Task Prepares_the_boot_partition_of_an_image_without_cloud_init_for_first_boot_by_script()
    {
        await BuildImageAsync();
        var deb = FakeDeb();
        var (code, output) = await PrepareAsync("--deb", deb);
        Assert.True(code == 0, output);
        Assert.Contains("prepared for node pi-kitchen (first boot: script", output);

        // config.txt: the original, then our block, whose [all] ends the [pi4] section.
        var config = (await ReadAsync("config.txt")).Replace("\r", "", StringComparison.Ordinal);
        Assert.StartsWith("# Raspberry Pi OS config.txt\ndtparam=audio=on", config, StringComparison.Ordinal);
        Assert.EndsWith(File.ReadAllText(Repo.PathOf("firmware-config", "boot", "config.txt.append")), config, StringComparison.Ordinal);
        Assert.Matches(@"(?s)\[pi4\]\narm_boost=1\n.*\[all\]\n.*dtparam=i2c_arm=on\n.*dtoverlay=w1-gpio\n.*dtparam=watchdog=on", config);

        // cmdline.txt: still one line, the original arguments first, then the memory cgroup and the hook.
        var cmdline = await ReadAsync("cmdline.txt");
        Assert.Equal(OriginalCmdline + " cgroup_enable=memory cgroup_memory=1 systemd.run=/boot/firmware/edgekube/firstboot.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n", cmdline);

        Assert.Equal(File.ReadAllBytes(Join), await ReadBytesAsync("edgekube/edgekube-join.yaml"));
        Assert.Equal(File.ReadAllBytes(deb), await ReadBytesAsync("edgekube/edgekube-agent_0.1.0_arm64.deb"));
        Assert.Equal(File.ReadAllBytes(Repo.PathOf("firmware-config", "firstboot", "firstboot.sh")), await ReadBytesAsync("edgekube/firstboot.sh"));
        var containerdConfig = await ReadAsync("edgekube/containerd-config.toml");
        Assert.Contains("SystemdCgroup = true", containerdConfig);
        Assert.Contains("sandbox_image = \"registry.k8s.io/pause:", containerdConfig);
        Assert.Equal("pi-kitchen\n", await ReadAsync("edgekube/hostname"));
        var (_, listing) = await Repo.RunAsync("mdir", ["-b", "-i", ImageAtOffset, "::/"]);
        Assert.DoesNotContain("user-data", listing);
    }

    [Fact]
    public async Task Running_it_twice_changes_nothing_the_second_time()
    {
        await BuildImageAsync();
        var (code, output) = await PrepareAsync();
        Assert.True(code == 0, output);
        var config = await ReadAsync("config.txt");
        var cmdline = await ReadAsync("cmdline.txt");
        (code, output) = await PrepareAsync();
        Assert.True(code == 0, output);
        Assert.Equal(config, await ReadAsync("config.txt"));
        Assert.Equal(cmdline, await ReadAsync("cmdline.txt"));
    }

    [Fact]
    public async Task An_image_with_cloud_init_gets_user_data_with_the_hostname_and_no_systemd_run_hook()
    {
        await BuildImageAsync(withUserData: true);
        var (code, output) = await PrepareAsync();
        Assert.True(code == 0, output);
        Assert.Contains("(first boot: cloud-init", output);
        var userData = await ReadAsync("user-data");
        Assert.StartsWith("#cloud-config\n", userData, StringComparison.Ordinal);
        Assert.Contains("hostname: \"pi-kitchen\"\n", userData);
        Assert.Contains("edgekube/firstboot.sh --install", userData);
        Assert.Contains("- containernetworking-plugins", userData);
        var cmdline = await ReadAsync("cmdline.txt");
        Assert.Contains("cgroup_enable=memory cgroup_memory=1", cmdline);
        Assert.DoesNotContain("systemd.run", cmdline);
    }

    [Fact]
    public async Task Refuses_a_join_file_that_is_not_a_join_config_and_an_image_without_a_fat_partition()
    {
        await BuildImageAsync();
        File.WriteAllText(Join, "hello: world\n");
        var (code, output) = await PrepareAsync();
        Assert.Equal(1, code);
        Assert.Contains("no nodeName: line", output);

        var plain = _dir["plain.img"];
        File.WriteAllBytes(plain, new byte[1 << 20]);
        (code, output) = await Repo.RunAsync("bash", ["scripts/prepare-sd-card.sh", "--image", plain, "--join", Repo.PathOf("firmware-config", "firstboot", "user-data")]);
        Assert.NotEqual(0, code);
    }

    [Fact]
    public async Task The_first_boot_script_and_user_data_are_well_formed()
    {
        await Repo.MustRunAsync("sh", "-n", Repo.PathOf("firmware-config", "firstboot", "firstboot.sh"));
        await Repo.MustRunAsync("bash", "-n", Repo.PathOf("scripts", "prepare-sd-card.sh"));
        // cloud-init reads YAML: the file must parse, with the keys the first boot relies on.
        var (code, output) = await Repo.RunAsync("python3", ["-c",
            "import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); print(sorted(d))", Repo.PathOf("firmware-config", "firstboot", "user-data")]);
        Assert.True(code == 0, output);
        Assert.Equal("['hostname', 'manage_etc_hosts', 'package_update', 'packages', 'runcmd', 'write_files']", output.Trim());
        Assert.Equal("cgroup_enable=memory cgroup_memory=1", File.ReadAllText(Repo.PathOf("firmware-config", "boot", "cmdline.txt.append")).Trim());
    }

    [Fact]
    public async Task Cake_target_PrepareSdCard_calls_the_script()
    {
        await BuildImageAsync();
        // Cake.Tool comes from the repository's tool manifest (.config/dotnet-tools.json), as the README says.
        await Repo.MustRunAsync("dotnet", "tool", "restore");
        var (code, output) = await Repo.RunAsync("dotnet", ["cake", "--target=PrepareSdCard", "--image=" + Image, "--join=" + Join], timeout: TimeSpan.FromMinutes(10));
        Assert.True(code == 0, output);
        Assert.Contains("prepared for node pi-kitchen", output);
        Assert.Contains("cgroup_enable=memory", await ReadAsync("cmdline.txt"));
    }
}

package com.scalar.verify.oracle;

import java.io.File;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Runs a database client program (pg_dump, psql, mysqldump, mysql) and fails on a non-zero exit. */
final class External {
  private External() {}

  static String tool(String binDir, String name) {
    return binDir == null || binDir.isEmpty() ? name : new File(binDir, name).getPath();
  }

  static void run(List<String> cmd, Map<String, String> env, Path stdin, Path stdout) throws Exception {
    ProcessBuilder pb = new ProcessBuilder(new ArrayList<>(cmd));
    pb.environment().putAll(env);
    if (stdin != null) {
      pb.redirectInput(stdin.toFile());
    }
    if (stdout != null) {
      pb.redirectOutput(stdout.toFile());
    }
    pb.redirectError(ProcessBuilder.Redirect.PIPE);
    Process p = pb.start();
    String err = new String(p.getErrorStream().readAllBytes());
    if (!p.waitFor(300, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new IllegalStateException("timed out: " + cmd);
    }
    if (p.exitValue() != 0) {
      throw new IllegalStateException(
          cmd.get(0) + " failed (exit " + p.exitValue() + "): " + err.trim() + "\n  command: " + cmd);
    }
  }
}

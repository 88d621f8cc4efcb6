package com.scalar.verify.oracle;

/**
 * A case to generate: its name (without the backend/version prefix), the ScalarDB settings it runs
 * with, the kind of cut, and the scenario that drives the workload and takes the backup.
 */
record CaseSpec(
    String id, boolean groupCommit, String coordinatorNamespace, String cut, Scenario scenario) {

  /** The workload of a case. It must take the backup (ctx.cut(), or cutCoordinator()+cutData()). */
  @FunctionalInterface
  interface Scenario {
    void run(CaseContext ctx) throws Exception;
  }
}

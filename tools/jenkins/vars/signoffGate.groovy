// signoffGate: a Jenkins shared-library step that asks Signoff for approval and waits for the
// gate. Put this repository's tools/jenkins folder in a shared library (or copy vars/ into
// yours), then in a Jenkinsfile:
//
//     def release = signoffGate(service: 'payments-api', environment: 'production',
//                               version: env.VERSION, image: 'registry.example.com/payments/api',
//                               digest: env.DIGEST, change: 'CHG0031400',
//                               evidenceFile: 'build/signoff-evidence.json')
//     sh './deploy.sh'
//     signoffGate.report(release: release, status: 'succeeded')
//
// It needs SIGNOFF_URL in the environment (a global property) and a "Secret text" credential
// holding a Signoff API token (id 'signoff-token' unless `credentialsId` says otherwise), and
// python3 and curl on the agent. The run's URL, commit and the person who started it
// (BUILD_USER_ID, from the "build user vars" plugin) are sent along; a replayed stage gets the
// same release (the Idempotency-Key is the job and build number). `evidenceFile` is optional:
// a JSON list of evidence items your build wrote, as the pipeline API takes them, e.g.
// [{"kind": "tests", "status": "passed", "summary": {"passed": 812, "failed": 0}}].
//
// Exit codes of `signoff-gate wait`: 0 approved, 2 rejected, 3 expired, 4 timeout, 5 blocked.

def call(Map args) {
    def timeoutSeconds = args.timeoutSeconds ?: 3600
    def variables = [
        "SIGNOFF_SERVICE=${args.service}",
        "SIGNOFF_ENVIRONMENT=${args.environment}",
        "SIGNOFF_VERSION=${args.version}",
        "SIGNOFF_IMAGE=${args.image}",
        "SIGNOFF_DIGEST=${args.digest}",
        "SIGNOFF_CHANGE=${args.change}",
        "SIGNOFF_CHANGE_TITLE=${args.title ?: ''}",
        "SIGNOFF_EVIDENCE_FILE=${args.evidenceFile ?: ''}",
        "SIGNOFF_TIMEOUT=${timeoutSeconds}",
    ]
    def release = ''
    withCredentials([string(credentialsId: args.credentialsId ?: 'signoff-token', variable: 'SIGNOFF_TOKEN')]) {
        withEnv(variables) {
            sh(label: 'Get signoff-gate', script: '''
                curl -fsSL "$SIGNOFF_URL/integrations/signoff-gate" -o signoff-gate
            ''')
            release = sh(label: 'Request approval', returnStdout: true, script: '''
                python3 signoff-gate request
            ''').trim()
            withEnv(["SIGNOFF_RELEASE=${release}"]) {
                def code = sh(label: 'Wait for approval', returnStatus: true, script: '''
                    python3 signoff-gate wait --timeout "$SIGNOFF_TIMEOUT"
                ''')
                if (code != 0) {
                    def answers = [2: 'rejected', 3: 'expired', 4: 'not decided in time', 5: 'blocked']
                    def answer = answers[code] ?: "signoff-gate failed with exit code ${code}"
                    error("Signoff release ${release}: ${answer}")
                }
            }
        }
    }
    return release
}

// Report the deployment's outcome: succeeded, failed or rolled_back.
def report(Map args) {
    withCredentials([string(credentialsId: args.credentialsId ?: 'signoff-token', variable: 'SIGNOFF_TOKEN')]) {
        withEnv(["SIGNOFF_RELEASE=${args.release}", "SIGNOFF_DEPLOY_STATUS=${args.status}"]) {
            sh(label: 'Report the outcome', script: '''
                python3 signoff-gate report --status "$SIGNOFF_DEPLOY_STATUS"
            ''')
        }
    }
}

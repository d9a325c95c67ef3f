// Starts `koreo lsp` for Koreo files and for YAML files that may hold Koreo documents.

import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
} from "vscode-languageclient/node";

let client: LanguageClient | undefined;

export async function activate(): Promise<void> {
  const command = vscode.workspace.getConfiguration("koreo").get<string>("path", "koreo");
  const serverOptions: ServerOptions = { command, args: ["lsp"] };
  const clientOptions: LanguageClientOptions = {
    // The server reports only on YAML files that hold `koreo.dev` documents.
    documentSelector: [
      { scheme: "file", language: "koreo" },
      { scheme: "file", language: "yaml" },
    ],
  };
  client = new LanguageClient("koreo", "Koreo", serverOptions, clientOptions);
  // The "Run test" code lens runs `koreo.runTest` on the server; the client registers it.
  await client.start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}

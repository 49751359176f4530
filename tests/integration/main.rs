//! The end-to-end tests, one binary (linking burn once): the real binary, real
//! plugins, real files and processes. Each module is one area; `common` holds
//! the shared builders.

mod common;

mod cli;
mod compare;
mod dashboard;
mod data;
mod experiments;
mod export;
mod faults;
mod hostile;
mod hostile_trainer;
mod house;
mod manage;
mod newcomer;
mod ops_1_3;
mod provenance;
mod pty;
mod reload;
mod reproduce;
mod scaffold;
mod second_day;
mod slurm;
mod strategies;
mod sweep_view;
mod sweeps;
mod text_strategies;
mod training;
mod views;
